"""Sharded benchmarking: merged shards equal a single-process run; two real worker processes.
(torchrun across "nodes", resumable logs: tests/test_scale.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

from igc import bench
from igc.benchmark.shard import merge, shard

COMPRESSORS = ["png", "uniform"]


@pytest.fixture
def images():
    r = np.random.default_rng(3)
    return [r.integers(0, 256, (6 + i, 9, 3), dtype=np.uint8) for i in range(5)]


def _bits(result):
    return [(row.image, row.compressor, row.compressed_bits) for row in result.results]


def test_shards_cover_everything_in_order():
    items = list(range(11))
    shards = [shard(items, r, 3) for r in range(3)]
    assert [i for shard in shards for i in shard] == items
    assert [len(s) for s in shards] == [4, 4, 3]


def test_merged_shards_equal_one_run(images):
    from igc.benchmark.run import as_loaded

    loaded = as_loaded(images)
    whole = bench(loaded, COMPRESSORS)
    parts = [bench(loaded[:2], COMPRESSORS), bench(loaded[2:], COMPRESSORS)]
    merged = merge(parts, COMPRESSORS, {"workers": 2})
    assert _bits(merged) == _bits(whole)
    assert [i["image"] for i in merged.images] == [i["image"] for i in whole.images]
    for name in COMPRESSORS:
        assert merged.summary[name]["total_ratio"] == pytest.approx(
            whole.summary[name]["total_ratio"])
        assert merged.summary[name]["images"] == 5
    assert merged.environment["workers"] == 2


@pytest.mark.slow
def test_two_processes_torch_distributed(images):
    result = bench(images, COMPRESSORS, workers=2, threads=1, engine="torch")
    assert _bits(result) == _bits(bench(images, COMPRESSORS))
    assert result.environment["distributed"] == "torch.distributed (gloo), 2 ranks on 1 host"
    assert all(row.roundtrip_ok for row in result.results)


@pytest.mark.slow
def test_bench_cli_workers(photo_dir):
    from typer.testing import CliRunner

    from igc.cli.app import app

    out = CliRunner().invoke(app, ["bench", "-c", "png,uniform", "--images", str(photo_dir),
                                   "--workers", "2", "--threads", "1", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert len(data["results"]) == 4 * 2
    assert data["environment"]["workers"] == 2
    assert data["environment"]["distributed"].startswith("torch.distributed (gloo)")
    assert data["summary"]["uniform"]["images"] == 4


def test_bad_worker_count(images):
    from igc.errors import UsageError

    with pytest.raises(UsageError, match="at least 1"):
        bench(images, COMPRESSORS, workers=0)
