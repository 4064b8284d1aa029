"""Hostile and broken inputs through the command line: resource limits, bad images and options,
bad models, no data loss, and the security rules (safetensors only, plugins can be disabled).

Each error case asserts the one `igc: error:` line and its specific message. Library-level
checks of the same inputs live in test_image.py, test_runtime.py and test_plugins.py.
"""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import igc
from igc.cli.app import app
from igc.core import container
from igc.errors import FormatError

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    """The single `igc: error:` line of a failed command (asserting that is all it printed)."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("igc: error: "), result.output
    assert "Traceback" not in result.output and "unexpected" not in lines[0], result.output
    return lines[0]


def _rgb(h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, depth: int = 8, body: bytes = b"\x00" * 10) -> bytes:
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(body)) + _png_chunk(b"IEND", b""))


def _header(height: int, width: int, **fields) -> container.Header:
    base = dict(height=height, width=width, tile=16, model_id="uniform",
                fingerprint="0" * 16, checksum=0, region_checks=b"\0", payload_length=0,
                batch=256)
    return container.Header(**{**base, **fields})


@pytest.fixture
def small_png(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(_rgb()).save(path)
    return path


# -- resource limits -------------------------------------------------------------------------


def test_igc_header_claiming_huge_image_is_refused_before_allocating(tmp_path):
    data = container.pack(_header(100_000, 100_000), b"\0" * 8)
    with pytest.raises(FormatError):  # warm up: imports are not the allocation measured
        igc.decompress(data)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=r"100000x100000 pixels exceeds the limit of "
                                              r"268435456 pixels \(set IGC_MAX_PIXELS"):
            igc.decompress(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    path = tmp_path / "huge.igc"
    path.write_bytes(data)
    for command in (["decompress", path, "-o", tmp_path / "out.png"], ["info", path]):
        assert "exceeds the limit of 268435456 pixels" in error_line(invoke(*command))
    assert not (tmp_path / "out.png").exists()


def test_igc_pixel_limit_is_configurable(tmp_path, monkeypatch):
    image = _rgb(10, 10)
    data = igc.compress(image, model="uniform")
    monkeypatch.setenv("IGC_MAX_PIXELS", "99")
    with pytest.raises(FormatError, match="10x10 pixels exceeds the limit of 99"):
        igc.decompress(data)
    monkeypatch.setenv("IGC_MAX_PIXELS", "100")
    np.testing.assert_array_equal(igc.decompress(data), image)
    monkeypatch.setenv("IGC_MAX_PIXELS", "many")
    path = tmp_path / "x.igc"
    path.write_bytes(data)
    assert "IGC_MAX_PIXELS must be a positive integer" in error_line(invoke("info", path))


def test_decompression_bomb_refused_by_compress_and_bench(tmp_path):
    folder = tmp_path / "bombs"
    folder.mkdir()
    bomb = folder / "bomb.png"
    bomb.write_bytes(_png(100_000, 100_000))
    message = "bomb.png: 100000×100000 = 10000000000 pixels exceeds the limit of 268435456"
    assert message in error_line(invoke("compress", bomb, "-o", tmp_path / "b.igc",
                                        "--model", "uniform"))
    assert not (tmp_path / "b.igc").exists()
    assert message in error_line(invoke("bench", "-c", "png", "--images", folder))
    assert message in error_line(invoke("bench", "-c", "uniform", "--images", bomb))


def test_pixel_limit_applies_to_input_images(small_png, monkeypatch):
    monkeypatch.setenv("IGC_MAX_PIXELS", "29")
    line = error_line(invoke("compress", small_png, "--model", "uniform"))
    assert "small.png: 5×6 = 30 pixels exceeds the limit of 29" in line


# -- bad images ------------------------------------------------------------------------------


def _bad_images(folder: Path) -> dict[str, Path]:
    """name -> file, for every kind of input that is not plain 8-bit RGB."""
    folder.mkdir(exist_ok=True)
    paths = {}

    def put(name, writer):
        paths[name] = folder / name
        writer(paths[name])

    put("empty.png", lambda p: p.write_bytes(b""))
    put("notes.png", lambda p: p.write_text("not an image\n"))
    good = _rgb(40, 40)
    put("cut.png", lambda p: (Image.fromarray(good).save(p),
                              p.write_bytes(p.read_bytes()[:120])))
    values = np.random.default_rng(5).integers(0, 65536, (4, 3, 3), dtype=np.uint16)
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(4))
    put("rgb16.png", lambda p: p.write_bytes(_png(3, 4, depth=16, body=rows)))
    put("cmyk.jpg", lambda p: Image.fromarray(_rgb(8, 8)).convert("CMYK").save(p))
    put("cmyk.tif", lambda p: Image.fromarray(_rgb(8, 8)).convert("CMYK").save(p))
    rgba = np.dstack([_rgb(), np.full((6, 5), 100, np.uint8)])
    put("alpha.png", lambda p: Image.fromarray(rgba, "RGBA").save(p))
    frames = [Image.fromarray(_rgb(seed=i)).convert("P") for i in range(2)]
    put("anim.gif", lambda p: frames[0].save(p, save_all=True, append_images=frames[1:]))
    put("zero.ppm", lambda p: p.write_bytes(b"P6\n0 4\n255\n"))
    return paths


COMPRESS_REFUSALS = {
    "empty.png": "empty.png: empty file (0 bytes)",
    "notes.png": "notes.png: not an image file",
    "cut.png": "cut.png: unreadable or corrupt image",
    "rgb16.png": "rgb16.png: 16-bit image: igc codes 8-bit RGB only",
    "cmyk.jpg": "cmyk.jpg: CMYK image: converting it to RGB is not exact",
    "cmyk.tif": "cmyk.tif: CMYK image: converting it to RGB is not exact",
    "alpha.png": "alpha.png has a non-opaque alpha channel; igc codes RGB only",
    "anim.gif": "anim.gif: animated or multi-page image (2 frames); igc codes a single still",
    "zero.ppm": "zero.ppm: not an image file",  # Pillow refuses a zero width before we see it
}


@pytest.mark.parametrize("name", sorted(COMPRESS_REFUSALS))
def test_compress_refuses_what_it_cannot_code_exactly(tmp_path, name):
    path = _bad_images(tmp_path / "in")[name]
    out = tmp_path / "out.igc"
    assert COMPRESS_REFUSALS[name] in error_line(invoke("compress", path, "-o", out,
                                                        "--model", "uniform"))
    assert not out.exists() and list(tmp_path.glob("**/*.tmp")) == []


def test_compress_a_directory(tmp_path):
    """A folder is its images (issue 17); one without any, or with -o, is refused."""
    line = error_line(invoke("compress", tmp_path, "--model", "uniform"))
    assert line.startswith(f"igc: error: no files found in {tmp_path} (looked for *.png, *.jpg")
    line = error_line(invoke("compress", tmp_path, "-o", tmp_path / "x.igc", "--model", "uniform"))
    assert line == (f"igc: error: -o names one output file, but {tmp_path} is a folder of "
                    "inputs: use --out-dir DIR")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads files regardless of permissions")
def test_compress_unreadable_file(small_png):
    small_png.chmod(0)
    try:
        line = error_line(invoke("compress", small_png, "--model", "uniform"))
        assert "small.png: unreadable or corrupt image: [Errno 13] Permission denied" in line
    finally:
        small_png.chmod(0o644)


def test_compress_exact_conversions_are_stated(tmp_path):
    path = tmp_path / "pal.png"
    Image.fromarray(_rgb()).convert("P").save(path)
    result = invoke("compress", path, "-o", tmp_path / "pal.igc", "--model", "uniform")
    assert result.exit_code == 0, result.output
    assert "(palette → RGB (exact))" in result.stdout
    with Image.open(path) as im:
        expected = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(igc.decompress((tmp_path / "pal.igc").read_bytes()), expected)


def test_bench_converts_with_notes_and_refuses_unreadable(tmp_path):
    import json

    paths = _bad_images(tmp_path / "in")
    convertible = tmp_path / "convertible"
    convertible.mkdir()
    for name in ("rgb16.png", "cmyk.jpg", "cmyk.tif", "alpha.png", "anim.gif"):
        shutil.copy(paths[name], convertible / name)
    result = invoke("bench", "-c", "uniform,png", "--images", convertible, "--json")
    assert result.exit_code == 0, result.output
    notes = {i["image"]: i["note"] for i in json.loads(result.stdout)["images"]}
    assert notes == {"rgb16.png": "16-bit → 8-bit (high byte)",
                     "cmyk.jpg": "CMYK → RGB (Pillow conversion, not exact)",
                     "cmyk.tif": "CMYK → RGB (Pillow conversion, not exact)",
                     "alpha.png": "alpha dropped (not coded)",
                     "anim.gif": "first of 2 frames; palette → RGB (exact)"}
    result = invoke("bench", "-c", "png", "--images", convertible / "alpha.png")
    assert result.exit_code == 0 and "alpha.png: alpha dropped (not coded)" in result.stdout
    for name in ("empty.png", "notes.png", "cut.png"):
        assert COMPRESS_REFUSALS[name] in error_line(invoke("bench", "-c", "png", "--images",
                                                            paths[name]))


# -- bad options -----------------------------------------------------------------------------


def test_bench_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    line = error_line(invoke("bench", "-c", "png", "--images", tmp_path))
    assert f"no images found in {tmp_path} (looked for *.png, *.jpg" in line


def test_bench_count_larger_than_pool(photo_dir):
    line = error_line(invoke("bench", "-c", "png", "--images", photo_dir, "--count", "9"))
    assert "--count 9 is larger than the 4 images available" in line


def test_unknown_compressor_lists_every_known_one(photo_dir):
    line = error_line(invoke("bench", "-c", "png,nosuch", "--images", photo_dir))
    known = line.split("unknown compressor 'nosuch'; known: ", 1)[1]
    assert known.split(", ") == igc.list_compressors()


# -- bad models ------------------------------------------------------------------------------


@pytest.fixture
def model_folders(tmp_path, tiny_model):
    """Broken model folders next to each other: name -> path."""
    from safetensors.torch import load_file, save_file

    root = tmp_path / "models"
    root.mkdir()
    partial = root / "partial"
    partial.mkdir()
    shutil.copy(Path(tiny_model) / "config.json", partial)
    tensors = load_file(Path(tiny_model) / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if "h.1." not in k}, partial / "model.safetensors")
    gpt2 = root / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text('{"model_type": "gpt2", "n_embd": 32}')
    shutil.copy(Path(tiny_model) / "model.safetensors", gpt2)
    no_weights = root / "no-weights"
    no_weights.mkdir()
    shutil.copy(Path(tiny_model) / "config.json", no_weights)
    return {"partial": partial, "gpt2": gpt2, "no-weights": no_weights,
            "missing": root / "missing"}


MODEL_ERRORS = {
    "missing": "/models/missing' not found: no such folder",
    "partial": "lack 'h.1.ln_1.weight'",
    "gpt2": "holds a 'gpt2' model; igc needs an ImageGPT checkpoint",
    "no-weights": "has no .safetensors weights",
}


@pytest.mark.parametrize("kind", sorted(MODEL_ERRORS))
def test_bad_model_folders(model_folders, small_png, tmp_path, kind):
    out = tmp_path / "out.igc"
    line = error_line(invoke("compress", small_png, "-o", out, "--model", model_folders[kind]))
    assert MODEL_ERRORS[kind] in line
    assert not out.exists()


def test_bad_model_for_decompress_and_bench(model_folders, tmp_path, photo_dir):
    src = tmp_path / "x.igc"
    src.write_bytes(igc.compress(_rgb(), model="uniform"))
    line = error_line(invoke("decompress", src, "-o", tmp_path / "x.png",
                             "--model", model_folders["partial"]))
    assert MODEL_ERRORS["partial"] in line
    line = error_line(invoke("bench", "-c", "imagegpt", "--images", photo_dir,
                             "--model", model_folders["gpt2"]))
    assert MODEL_ERRORS["gpt2"] in line


# -- security --------------------------------------------------------------------------------


class _Trap:
    """Unpickling this creates the file `path`: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_pickle_weights_are_never_unpickled(tmp_path, tiny_model, small_png):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(Path(tiny_model) / "config.json", folder)
    marker = tmp_path / "pickle-was-loaded"
    for name in ("pytorch_model.bin", "model.pt"):
        (folder / name).write_bytes(pickle.dumps(_Trap(marker)))
    line = error_line(invoke("compress", small_png, "-o", tmp_path / "o.igc", "--model", folder))
    assert "pickle weights are refused because loading them can run code" in line
    assert "model.pt" in line and "pytorch_model.bin" in line
    assert not marker.exists()


class _FakeEntryPoint:
    """A third-party plugin entry point that registers compressor 'intruder' when loaded."""

    name = "intruder"
    loaded = False

    class dist:  # mimics importlib.metadata's EntryPoint.dist
        name = "igc-intruder"
        version = "0.1"

    def load(self):
        type(self).loaded = True

        class Intruder:
            name = "intruder"
            lossless = True

        class Plugin:
            @igc.hookimpl
            def register_compressors(self, register):
                register(Intruder)

        return Plugin()


def test_disable_plugins_never_imports_third_party_code(monkeypatch):
    import json
    from importlib import metadata

    from igc.plugins import manager

    monkeypatch.setattr(metadata, "entry_points", lambda group: [_FakeEntryPoint()])
    monkeypatch.setattr(manager, "_registry", None)
    result = invoke("plugins", "--json")
    names = {p["name"] for p in json.loads(result.stdout)["plugins"]}
    assert "igc-intruder" in names and _FakeEntryPoint.loaded

    _FakeEntryPoint.loaded = False
    monkeypatch.setenv("IGC_DISABLE_PLUGINS", "1")
    monkeypatch.setattr(manager, "_registry", None)
    result = invoke("plugins", "--json")
    names = {p["name"] for p in json.loads(result.stdout)["plugins"]}
    assert "igc-intruder" not in names and "igc.plugins.builtins" in names
    assert "unknown compressor 'intruder'" in error_line(invoke("bench", "-c", "intruder"))
    assert not _FakeEntryPoint.loaded
    monkeypatch.setattr(manager, "_registry", None)  # the next test builds a clean registry


# -- no data loss ----------------------------------------------------------------------------


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def test_failing_decode_leaves_existing_output_untouched_even_with_force(tmp_path):
    good = igc.compress(_rgb(), model="uniform")
    bad = tmp_path / "bad.igc"
    bad.write_bytes(good[:-4] + bytes(b ^ 0xFF for b in good[-4:]))
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    before = _listing(tmp_path)
    line = error_line(invoke("decompress", bad, "-o", out, "--force"))
    assert "checksum" in line or "range decoder" in line
    assert out.read_bytes() == b"precious" and _listing(tmp_path) == before


def test_failing_compress_leaves_existing_output_untouched_even_with_force(tmp_path):
    src = tmp_path / "notes.png"
    src.write_text("not an image")
    out = tmp_path / "out.igc"
    out.write_bytes(b"precious")
    before = _listing(tmp_path)
    error_line(invoke("compress", src, "-o", out, "--force", "--model", "uniform"))
    assert _listing(tmp_path) == before


def test_failing_write_removes_its_temp_file(tmp_path, small_png, monkeypatch):
    from igc.cli import outputs

    out = tmp_path / "out.igc"
    out.write_bytes(b"precious")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.os, "replace", refuse)
    result = invoke("compress", small_png, "-o", out, "--force", "--model", "uniform")
    assert result.exit_code != 0 and "No space left on device" in result.output
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.igc", "small.png"]


def test_overwriting_needs_force(tmp_path, small_png):
    out = tmp_path / "small.png.igc"  # the default output name
    out.write_bytes(b"precious")
    line = error_line(invoke("compress", small_png, "--model", "uniform"))
    assert f"{out} exists; pass --force to overwrite it" in line
    assert out.read_bytes() == b"precious"
    result = invoke("compress", small_png, "--model", "uniform", "--force")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(igc.decompress(out.read_bytes()), _rgb())
    png = tmp_path / "small.png"
    before = png.read_bytes()
    line = error_line(invoke("decompress", out, "-o", png))
    assert "small.png exists; pass --force" in line and png.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png", "small.png.igc"]


def test_bench_writes_nothing_into_the_image_folder(photo_dir, tmp_path, monkeypatch):
    reports = tmp_path / "reports"
    reports.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _listing(photo_dir)
    result = invoke("bench", "-c", "uniform,png,zstd", "--images", photo_dir, "--csv",
                    reports / "r.csv", "--plot", reports / "r.png")
    assert result.exit_code == 0, result.output
    assert _listing(photo_dir) == before
    assert sorted(p.name for p in reports.iterdir()) == ["r.csv", "r.png"]
    assert list(cwd.iterdir()) == []


def test_long_invalid_model_id_in_a_valid_header(tmp_path):
    """Regression: a header (with a correct CRC) holding a 255-byte non-UTF-8 model id used to
    reach the model loader and end in OSError 'File name too long'. Version 3 reads a length
    byte up to 255; version 4 reads a byte >= 0x80 as a shipped model's code instead."""
    for version, message in ((3, "corrupted header: bad model id"),
                             (4, "unknown model id code 255")):
        data = bytearray(container.pack(_header(2, 2, model_id="M" * 64, version=version), b""))
        start = data.index(b"M" * 64)
        data[start - 1 : start + 64] = bytes([255]) + b"\xff" * 255
        end = len(data) - 2
        data[end:] = (zlib.crc32(bytes(data[:end])) & 0xFFFF).to_bytes(2, "little")
        with pytest.raises(FormatError, match=message):
            igc.decompress(bytes(data))
        path = tmp_path / "id.igc"
        path.write_bytes(bytes(data))
        assert message in error_line(invoke("decompress", path, "-o", tmp_path / "x.png",
                                            "--force"))


def test_model_id_naming_an_unknown_home_directory(small_png):
    data = container.pack(_header(2, 2, model_id="~niform"), b"")
    with pytest.raises(igc.IgcError):
        igc.decompress(data)
    line = error_line(invoke("compress", small_png, "--model", "~igc-no-such-user/model"))
    assert "not found" in line
