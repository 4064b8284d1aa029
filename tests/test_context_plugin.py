"""The second example package, examples/igc-context: it registers only a Model (`context`) and a
Coder (`ans`), installed with pip (CI does this), and igc composes them everywhere."""

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke
from PIL import Image
from typer.testing import CliRunner

import igc
from igc.core import container

FIXTURES = Path(__file__).parent / "data"
runner = CliRunner()


def _installed() -> bool:
    try:
        metadata.distribution("igc-context")
    except metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _installed() and not os.environ.get("IGC_REQUIRE_EXAMPLE_PLUGIN"),
    reason="examples/igc-context is not installed (pip install ./examples/igc-context)",
)




def astronaut_crop() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[100:120, 200:224])


def test_it_registers_a_model_and_a_coder_only():
    assert _installed(), "CI must install examples/igc-context"
    out = invoke("plugins", "--json")
    assert out.exit_code == 0, out.output
    plugins = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    assert plugins["igc-context"]["registers"] == {"model": ["context"], "coder": ["ans"]}
    assert "context" in igc.list_compressors()


def test_bench_by_name_with_either_coder(photo_dir, tiny_model):
    out = invoke("bench", "-c", "context,uniform,png", "--images", photo_dir, "--json")
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    rows = [r for r in result["results"] if r["compressor"] == "context"]
    assert len(rows) == 4 and all(r["roundtrip_ok"] for r in rows)
    summary = result["summary"]
    assert summary["context"]["model_bits_per_subpixel"] < 6 < summary["uniform"]["model_bits_per_subpixel"]
    assert result["environment"]["models"]["context"]["coder"] == "range"
    out = invoke("bench", "-c", "context,imagegpt", "--coder", "ans", "--model", tiny_model,
                 "--images", photo_dir, "--json")
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert all(r["roundtrip_ok"] for r in result["results"])
    assert {m["coder"] for m in result["environment"]["models"].values()} == {"ans"}
    assert result["summary"]["context"]["coder_overhead_percent"] < 1


def test_real_files_round_trip_exactly_and_name_it(photo_dir, tmp_path):
    for i, source in enumerate(sorted(photo_dir.iterdir())):
        coder = ("range", "ans")[i % 2]
        packed, back = tmp_path / f"{i}.igc", tmp_path / f"{i}.png"
        out = invoke("compress", source, "-o", packed, "--model", "context", "--coder", coder)
        assert out.exit_code == 0, out.output
        info = json.loads(invoke("info", packed, "--json").stdout)
        assert (info["model_plugin"], info["model_id"], info["coder"], info["tokenizer"]) == (
            "context", "context", coder, "subpixel")
        out = invoke("decompress", packed, "-o", back)  # no --model: the header names it
        assert out.exit_code == 0, out.output
        assert np.array_equal(np.asarray(Image.open(back)), np.asarray(Image.open(source)))


def test_the_committed_file_decodes_on_any_machine():
    """Integer counts and IEEE division: a file from another machine decodes bit for bit."""
    data = (FIXTURES / "context-ans-v4.igc").read_bytes()
    assert np.array_equal(igc.decompress(data), astronaut_crop())


def test_imagegpt_with_the_ans_coder(tiny_model):
    image = astronaut_crop()[:9, :13]
    comp = igc.get_compressor("imagegpt", model=tiny_model, coder="ans")
    data = comp.compress(image)
    header = container.unpack(data)[0]
    assert (header.model_plugin, header.coder) == ("imagegpt", "ans")
    assert np.array_equal(igc.decompress(data, tiny_model), image)


# Runs igc in a fresh interpreter where the package's entry point is gone, as if uninstalled.
WITHOUT_IT = """
import sys
from importlib import metadata
real = metadata.entry_points
metadata.entry_points = lambda **kw: [ep for ep in real(**kw)
                                      if ep.dist is None or ep.dist.name != "igc-context"]
from igc.cli.app import main
sys.argv = ["igc", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("how", ["uninstalled", "disabled"])
def test_decoding_without_it_fails_in_one_line(tmp_path, how):
    env = dict(os.environ)
    code = ["-c", WITHOUT_IT]
    if how == "disabled":
        env["IGC_DISABLE_PLUGINS"] = "1"
        code = ["-m", "igc"]
    out = subprocess.run([sys.executable, *code, "decompress", str(FIXTURES / "context-ans-v4.igc"),
                          "-o", str(tmp_path / "x.png")], capture_output=True, text=True, env=env,
                         timeout=120)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 1 and len(lines) == 1 and not out.stdout, out.stderr
    assert lines[0].startswith("igc: error: this file needs the model plugin 'context' "
                               "(model 'context', fingerprint ")
    assert "which is not installed" in lines[0]
    assert ("IGC_DISABLE_PLUGINS is set" in lines[0]) == (how == "disabled")
    assert not (tmp_path / "x.png").exists()


def test_files_name_the_package_that_registers_their_plugins(tmp_path):
    """Format version 5 records the distribution of each plugin the file names, so a machine
    without it is told what to install, in one line."""
    image = np.random.default_rng(5).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    data = igc.compress(image, model="context", coder="ans")
    header, _ = container.unpack(data)
    assert header.distributions == {"model": "igc-context", "coder": "igc-context"}
    assert igc.info(data)["distributions"] == header.distributions
    (tmp_path / "a.igc").write_bytes(data)
    env = dict(os.environ, IGC_DISABLE_PLUGINS="1")
    out = subprocess.run([sys.executable, "-m", "igc", "decompress", str(tmp_path / "a.igc"),
                          "-o", str(tmp_path / "a.png")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("igc: error: "), out.stderr
    assert "'context'" in lines[0] and "pip install igc-context" in lines[0]
    assert not (tmp_path / "a.png").exists()
    shown = invoke("info", tmp_path / "a.igc")
    assert "from package igc-context" in shown.output
