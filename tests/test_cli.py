"""The command line through Typer's CliRunner: the JSON contract, errors, the codec commands."""

import json

import numpy as np
import pytest
from helpers import invoke
from PIL import Image
from typer.testing import CliRunner

runner = CliRunner()




def test_help_lists_commands():
    out = invoke("--help")
    assert out.exit_code == 0
    for cmd in ("bench", "compress", "decompress", "info", "plugins", "train"):
        assert cmd in out.output


def test_bench_json_contract(photo_dir):
    out = invoke("bench", "-c", "uniform,png,zstd,webp,jxl", "--images", photo_dir, "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data) >= {"results", "summary", "environment"}
    assert len(data["results"]) == 4 * 5
    for row in data["results"]:
        for key in ("image", "compressor", "height", "width", "original_bits", "compressed_bits",
                    "bits_per_subpixel", "ratio", "lossless", "roundtrip_ok"):
            assert key in row
        assert row["roundtrip_ok"] is True
        assert row["original_bits"] == row["height"] * row["width"] * 24
        assert row["ratio"] == pytest.approx(row["original_bits"] / row["compressed_bits"])
    uniform = [r for r in data["results"] if r["compressor"] == "uniform"]
    assert all(r["model_bits"] == r["height"] * r["width"] * 24 for r in uniform)
    # 8 bits per subpixel plus a header of at most 64 bytes and one flushed word
    assert all(8.0 <= r["bits_per_subpixel"] <= 8.0 + (68 * 8) / (r["height"] * r["width"] * 3)
               for r in uniform)
    summary = data["summary"]
    for name in ("uniform", "png", "zstd", "webp", "jxl"):
        assert set(summary[name]) >= {"total_ratio", "mean_ratio", "bits_per_subpixel"}
    total = sum(r["original_bits"] for r in uniform) / sum(r["compressed_bits"] for r in uniform)
    assert summary["uniform"]["total_ratio"] == pytest.approx(total)
    assert data["environment"]["seed"] == 0 and "numpy" in data["environment"]["versions"]


def test_bench_table_csv_markdown_plot(photo_dir, tmp_path):
    csv_path, plot_path = tmp_path / "r.csv", tmp_path / "r.png"
    out = invoke("bench", "-c", "png,zstd", "--images", photo_dir, "--count", "2", "--csv",
                 csv_path, "--plot", plot_path)
    assert out.exit_code == 0, out.output
    assert "Summary" in out.output and "png" in out.output
    assert len(csv_path.read_text().splitlines()) == 1 + 2 * 2
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = invoke("bench", "-c", "png", "--images", photo_dir, "--markdown")
    assert out.stdout.startswith("| compressor |")


def test_bench_seeded_pick_is_reproducible(photo_dir):
    def picked(seed):
        out = invoke("bench", "-c", "zstd", "--images", photo_dir, "-n", "2", "--seed", seed,
                     "--json")
        return [r["image"] for r in json.loads(out.stdout)["results"]]

    assert picked(3) == picked(3)
    assert len(set(picked(1))) == 2


def test_bench_imagegpt_with_tiny_model(photo_dir, tiny_model):
    out = invoke("bench", "-c", "imagegpt,png", "--images", photo_dir, "--model", tiny_model,
                 "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    rows = [r for r in data["results"] if r["compressor"] == "imagegpt"]
    assert len(rows) == 4 and all(r["roundtrip_ok"] for r in rows)
    for r in rows:  # real file: model bits plus the header plus coder overhead
        assert r["model_bits"] < r["compressed_bits"] <= r["model_bits"] * 1.001 + 8 * (64 + 8)
    model = data["environment"]["models"]["imagegpt"]
    assert model["model"] == "tiny-imagegpt0" and len(model["fingerprint"]) == 16
    out = invoke("bench", "-c", "imagegpt", "--images", photo_dir, "--model", tiny_model,
                 "--estimate", "--json")
    rows = json.loads(out.stdout)["results"]
    assert all(r["estimate"] and r["roundtrip_ok"] is None for r in rows)


@pytest.mark.parametrize(("args", "message"), [
    (["bench", "-c", "pgn"], "unknown compressor 'pgn'; known:"),
    (["bench", "-c", "png", "--count", "0"], "--count must be at least 1"),
    (["bench", "-c", "png", "--images", "/nonexistent/x"], "/nonexistent/x"),
    (["bench", "-c", "imagegpt", "--model", "/nonexistent/model", "--images", "."],
     "not found"),
    (["decompress", "/nonexistent.igc"], "no such file"),
])
def test_errors_are_one_line(args, message):
    out = invoke(*args)
    assert out.exit_code != 0
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("igc: error:"), out.output
    assert message in lines[0]
    assert "Traceback" not in out.output


def test_compress_decompress_info(tmp_path, tiny_model):
    image = np.random.default_rng(0).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    src = tmp_path / "in.png"
    Image.fromarray(image).save(src)
    igc_path, png_path = tmp_path / "out.igc", tmp_path / "out.png"
    out = invoke("compress", src, "-o", igc_path, "--model", tiny_model)
    assert out.exit_code == 0, out.output
    out = invoke("decompress", igc_path, "-o", png_path, "--model", tiny_model)
    assert out.exit_code == 0, out.output
    np.testing.assert_array_equal(np.asarray(Image.open(png_path)), image)
    out = invoke("info", igc_path, "--json")
    header = json.loads(out.stdout)
    assert (header["height"], header["width"], header["tile"]) == (9, 14, 4)
    assert header["model_id"] == "tiny-imagegpt0" and header["header_bytes"] <= 64
    # no overwrite without --force, and the existing file is untouched
    before = png_path.read_bytes()
    out = invoke("decompress", igc_path, "-o", png_path, "--model", tiny_model)
    assert out.exit_code != 0 and "--force" in out.output
    assert png_path.read_bytes() == before


def test_decompress_corrupt_file_leaves_no_output(tmp_path, tiny_model):
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    data = bytearray(__import__("igc").compress(image, model=tiny_model))
    data[-2] ^= 0xFF
    bad = tmp_path / "bad.igc"
    bad.write_bytes(bytes(data))
    out = invoke("decompress", bad, "-o", tmp_path / "x.png", "--model", tiny_model)
    assert out.exit_code != 0 and "igc: error:" in out.output
    assert not (tmp_path / "x.png").exists()
    assert list(tmp_path.glob(".*")) == []  # no temporary file


def test_help_and_a_classical_bench_import_no_torch(photo_dir):
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from igc.cli.app import app; "
            "r = CliRunner(); assert r.invoke(app, ['--help']).exit_code == 0; "
            "out = r.invoke(app, ['bench', '-c', 'png,zstd', '--images', sys.argv[1], '--json']); "
            "assert out.exit_code == 0, out.output; "
            "print([m for m in ('torch', 'transformers', 'numba') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(photo_dir)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_threads_does_not_import_torch_for_codecs_without_it():
    """--threads with classical codecs only: torch (and its 250 MB) stays unloaded, and it still
    takes the count if a model loads later."""
    import subprocess
    import sys

    code = ("import sys, igc.api as a; a.set_threads(2); assert 'torch' not in sys.modules; "
            "import torch; assert torch.get_num_threads() == 2")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
