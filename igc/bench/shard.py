"""Benchmarking a large image set on several worker processes.

The model codec is CPU-bound and single-stream per image, so a big benchmark is spread across
processes, one shard of images each. The processes form a torch.distributed group (gloo backend,
127.0.0.1 only: nothing listens beyond this machine) that `accelerate` sets up and shards over
(`PartialState.split_between_processes`, `gather_object`); without accelerate installed the same
group is made with torch.distributed directly. Rank 0 merges the gathered rows into one
`BenchResult` and recomputes the summary over all of them, so a sharded run reports exactly what a
single-process run over the same images would (timings aside).

Workers are spawned, not forked: a fork of a process whose OpenMP pool has run can hang.
"""

from __future__ import annotations

import os
import pickle
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from igc.benchmark import BenchResult, _as_loaded, _summarise
from igc.errors import UsageError

LOCALHOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def _shard(items: list, rank: int, world: int) -> list:
    """Contiguous shards, sizes differing by at most one (what accelerate's splitter does)."""
    base, extra = divmod(len(items), world)
    start = rank * base + min(rank, extra)
    return items[start : start + base + (1 if rank < extra else 0)]


def merge(parts: Sequence[BenchResult], names: Sequence[str], extra_env: dict | None = None,
          ) -> BenchResult:
    """One BenchResult from shards in rank order: rows and images concatenated, summary
    recomputed over all rows (averaging per-shard summaries would weight shards wrongly)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        raise UsageError("no shard produced a result")
    rows = [row for p in parts for row in p.results]
    images = [info for p in parts for info in p.images]
    unavailable: dict[str, str] = {}
    for p in parts:
        unavailable.update(p.unavailable)
    present = [n for n in names if any(r.compressor == n for r in rows)]
    env = dict(parts[0].environment)
    env.update(extra_env or {})
    return BenchResult(rows, _summarise(rows, present), env, images, unavailable)


def _worker(local_rank: int, world: int, port: int, images: list, compressors: list,
            options: dict, threads: int, out_path: str, engine: str = "auto") -> None:
    """Entry point of one spawned process: join the group, bench its shard, gather to rank 0."""
    os.environ.update({
        "MASTER_ADDR": LOCALHOST, "MASTER_PORT": str(port), "RANK": str(local_rank),
        "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
        "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": str(threads),
    })
    import torch
    import torch.distributed as dist

    from igc.benchmark import bench

    torch.set_num_threads(threads)
    PartialState = None
    if engine != "torch":
        try:
            from accelerate import PartialState
            from accelerate.utils import gather_object
        except ImportError:
            if engine == "accelerate":
                raise

    if PartialState is not None:
        state = PartialState(cpu=True, backend="gloo")
        rank = state.process_index
        with state.split_between_processes(list(range(len(images)))) as indices:
            shard = [images[i] for i in indices]
        result = bench(shard, compressors, **options) if shard else None
        gathered = gather_object([result])
        engine = f"accelerate {_version('accelerate')} (torch.distributed, gloo)"
    else:
        dist.init_process_group("gloo", init_method=f"tcp://{LOCALHOST}:{port}",
                                rank=local_rank, world_size=world)
        rank = dist.get_rank()
        shard = _shard(images, rank, world)
        result = bench(shard, compressors, **options) if shard else None
        gathered = [None] * world if rank == 0 else None
        dist.gather_object(result, gathered, dst=0)
        engine = "torch.distributed (gloo)"
    if rank == 0:
        names = [c if isinstance(c, str) else c.name for c in compressors]
        merged = merge(gathered, names, {"workers": world, "threads_per_worker": threads,
                                         "distributed": engine})
        Path(out_path).write_bytes(pickle.dumps(merged))
    dist.barrier()
    dist.destroy_process_group()


def _version(dist_name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return "?"


def bench_sharded(images: Sequence[Any], compressors: Sequence[str], *, workers: int,
                  threads: int | None = None, engine: str = "auto", **options: Any,
                  ) -> BenchResult:
    """`igc.benchmark.bench` over `workers` processes, each on a contiguous shard of the images.

    `compressors` must be names (each process builds its own, loading its own model copy);
    `options` go to `bench` unchanged (verify, estimate, seed, model, preprocessing).
    `threads`: torch threads per worker (default: the machine's cores split evenly).
    `engine`: "accelerate", "torch" (torch.distributed directly) or "auto" (accelerate if
    installed).
    """
    import torch.multiprocessing as mp

    if engine not in ("auto", "accelerate", "torch"):
        raise UsageError(f"unknown engine {engine!r}: auto, accelerate or torch")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if compressors and not isinstance(compressors[0], str):
        raise UsageError("bench_sharded takes compressor names, not instances")
    loaded = _as_loaded(images)
    if not loaded:
        raise UsageError("no images to benchmark")
    workers = min(workers, len(loaded))
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    with tempfile.TemporaryDirectory(prefix="igc-shards-") as tmp:
        out_path = str(Path(tmp) / "result.pickle")
        mp.start_processes(_worker, args=(workers, _free_port(), loaded, list(compressors),
                                          options, threads, out_path, engine),
                           nprocs=workers, join=True, start_method="spawn")
        return pickle.loads(Path(out_path).read_bytes())
