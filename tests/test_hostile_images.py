"""Hostile and unusual input images: what `igc compress` refuses and `igc bench` converts (with a
note), decompression bombs and the pixel limit, `.npz` archives, and odd arrays given to the
library."""

from __future__ import annotations

import json
import os
import re
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import error_line, invoke, png_bytes, rgb
from PIL import Image

import igc
from igc import api


def test_decompression_bomb_refused_by_compress_and_bench(tmp_path):
    folder = tmp_path / "bombs"
    folder.mkdir()
    bomb = folder / "bomb.png"
    bomb.write_bytes(png_bytes(100_000, 100_000))
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


def _bad_images(folder: Path) -> dict[str, Path]:
    """name -> file, for every kind of input that is not plain 8-bit RGB."""
    folder.mkdir(exist_ok=True)
    paths = {}

    def put(name, writer):
        paths[name] = folder / name
        writer(paths[name])

    put("empty.png", lambda p: p.write_bytes(b""))
    put("notes.png", lambda p: p.write_text("not an image\n"))
    good = rgb(40, 40)
    put("cut.png", lambda p: (Image.fromarray(good).save(p),
                              p.write_bytes(p.read_bytes()[:120])))
    values = np.random.default_rng(5).integers(0, 65536, (4, 3, 3), dtype=np.uint16)
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(4))
    put("rgb16.png", lambda p: p.write_bytes(png_bytes(3, 4, depth=16, body=rows)))
    put("cmyk.jpg", lambda p: Image.fromarray(rgb(8, 8)).convert("CMYK").save(p))
    put("cmyk.tif", lambda p: Image.fromarray(rgb(8, 8)).convert("CMYK").save(p))
    rgba = np.dstack([rgb(), np.full((6, 5), 100, np.uint8)])
    put("alpha.png", lambda p: Image.fromarray(rgba, "RGBA").save(p))
    frames = [Image.fromarray(rgb(seed=i)).convert("P") for i in range(2)]
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
    assert not out.exists() and list(tmp_path.glob("**/.*")) == []


def test_compress_a_directory(tmp_path):
    """A folder is its images (issue 17); one without any, or with -o, is refused."""
    line = error_line(invoke("compress", tmp_path, "--model", "uniform"))
    assert line.startswith(f"igc: error: no files found in {tmp_path} (looked for *.png, *.jpg")
    line = error_line(invoke("compress", tmp_path, "-o", tmp_path / "x.igc", "--model", "uniform"))
    assert line == (f"igc: error: -o names one output file, but {tmp_path} is a folder of "
                    "inputs: use --out-dir DIR")


def _feed(fifo: Path, data: bytes):
    """A daemon thread writing `data` into the FIFO once a reader opens it."""
    import threading

    writer = threading.Thread(target=lambda: fifo.write_bytes(data), daemon=True)
    writer.start()
    return writer


def _release(fifo: Path, writer) -> None:
    """If no reader came (the code under test went wrong), let the writer's open return, so
    that a failing test fails instead of leaving a thread blocked in open()."""
    writer.join(10)
    if writer.is_alive():
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
        writer.join(10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")
def test_a_pipe_is_read_as_standard_input_is_and_a_device_is_named(tmp_path):
    """`igc compress <(cat a.png)` and `/dev/stdin` are pipes: their size is 0 until read, so
    they were called empty files; they are read, bounded, as standard input is. A character
    device is said to be one."""
    import io

    pixels = rgb(7, 5, seed=4)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = _feed(fifo, buffer.getvalue())
    result = invoke("compress", fifo, "-o", tmp_path / "x.igc", "--model", "uniform")
    _release(fifo, writer)
    assert result.exit_code == 0, result.output
    assert np.array_equal(igc.decompress((tmp_path / "x.igc").read_bytes()), pixels)
    writer = _feed(fifo, b"")
    line = error_line(invoke("compress", fifo, "-o", tmp_path / "y.igc", "--model", "uniform"))
    _release(fifo, writer)
    assert line == f"igc: error: {fifo}: empty input (0 bytes)"
    if Path("/dev/zero").exists():
        line = error_line(invoke("compress", "/dev/zero", "-o", tmp_path / "z.igc"))
        assert line == "igc: error: /dev/zero: is a character device, not an image file"


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
    Image.fromarray(rgb()).convert("P").save(path)
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


RGB = np.random.default_rng(7).integers(0, 256, (4, 5, 3), dtype=np.uint8)


def compress_line(path) -> str:
    """The one line `igc compress` prints for a file it accepts (written to PATH.igc)."""
    result = invoke("compress", path, "--model", "uniform")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    return line


def decoded(path) -> np.ndarray:
    """The pixels of PATH.igc."""
    return igc.decompress(path.with_name(path.name + ".igc").read_bytes())


def bench_notes(*paths) -> dict[str, str]:
    args = [a for p in paths for a in ("--images", p)]
    result = invoke("bench", "-c", "png", *args, "--json")
    assert result.exit_code == 0, result.output
    return {i["image"]: i["note"] for i in json.loads(result.stdout)["images"]}


def _netpbm(kind: str, maxval: int, samples) -> bytes:
    wide = maxval > 255
    body = np.asarray(samples, ">u2" if wide else np.uint8).tobytes()
    channels = 3 if kind == "P6" else 1
    width = len(samples) // channels
    return f"{kind}\n{width} 1\n{maxval}\n".encode() + body


NETPBM = {
    "p6-65535.ppm": (("P6", 65535, [0, 1, 255, 256, 65534, 65535]),
                     "p6-65535.ppm: 16-bit image (maxval 65535): igc codes 8-bit RGB only",
                     "16-bit (maxval 65535) → 8-bit (scaled)"),
    "p6-1023.ppm": (("P6", 1023, [0, 1, 2, 3, 1022, 1023]),
                    "p6-1023.ppm: 16-bit image (maxval 1023): igc codes 8-bit RGB only",
                    "16-bit (maxval 1023) → 8-bit (scaled)"),
    "p5-1023.pgm": (("P5", 1023, [0, 1, 512, 1023]),
                    "p5-1023.pgm: 16-bit image (maxval 1023): igc codes 8-bit RGB only",
                    "16-bit → 8-bit (high byte); grayscale → RGB (replicated)"),
    "p6-100.ppm": (("P6", 100, [0, 1, 2, 50, 99, 100]),
                   "p6-100.ppm: maxval 100, not 255: the samples are rescaled when read, so "
                   "they cannot be coded as stored; igc codes 8-bit RGB only",
                   "maxval 100 → 255 (rescaled)"),
}


@pytest.mark.parametrize("name", sorted(NETPBM))
def test_strict_refuses_netpbm_maxval_other_than_255(tmp_path, name):
    args, refusal, note = NETPBM[name]
    path = tmp_path / name
    path.write_bytes(_netpbm(*args))
    out = tmp_path / "out.igc"
    line = error_line(invoke("compress", path, "-o", out, "--model", "uniform"))
    assert line == f"igc: error: {tmp_path}/{refusal}"
    assert not out.exists()
    assert bench_notes(path) == {name: note}


def test_netpbm_with_maxval_255_is_coded_exactly(tmp_path):
    path = tmp_path / "plain.ppm"
    path.write_bytes(b"P3\n2 1\n255\n0 1 2 253 254 255\n")
    assert "plain.ppm.igc: 2×1, 50 bytes" in compress_line(path)  # no note: nothing changed
    pixels = decoded(path)
    assert pixels.tolist() == [[[0, 1, 2], [253, 254, 255]]]


def test_strict_refuses_a_transparency_key_that_hides_pixels(tmp_path):
    rgb_key, gray_key = tmp_path / "key.png", tmp_path / "gray-key.png"
    Image.fromarray(RGB).save(rgb_key, transparency=tuple(int(v) for v in RGB[0, 0]))
    Image.fromarray(RGB[:, :, 1]).save(gray_key, transparency=int(RGB[0, 0, 1]))
    for path in (rgb_key, gray_key):
        line = error_line(invoke("compress", path, "-o", tmp_path / "o.igc", "--model", "uniform"))
        assert line == (f"igc: error: {path} has a transparency key (tRNS) that makes 1 pixel(s) "
                        "transparent; igc codes RGB only")
    assert bench_notes(rgb_key, gray_key) == {
        "key.png": "transparency key dropped (not coded)",
        "gray-key.png": "grayscale → RGB (replicated); transparency key dropped (not coded)"}


def test_a_transparency_key_no_pixel_matches_is_stated(tmp_path):
    present = {tuple(c) for c in RGB.reshape(-1, 3).tolist()}
    absent = next((0, 0, b) for b in range(256) if (0, 0, b) not in present)
    path = tmp_path / "unused-key.png"
    Image.fromarray(RGB).save(path, transparency=absent)
    assert "(transparency key matches no pixel (dropped))" in compress_line(path)
    np.testing.assert_array_equal(decoded(path), RGB)


def test_exif_orientation_and_icc_profile_are_stated_when_dropped(tmp_path):
    from PIL import ImageCms

    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "turned.png"
    Image.fromarray(RGB).save(path, exif=exif, icc_profile=srgb)
    line = compress_line(path)
    note = ("EXIF orientation 6 not applied (pixels coded as stored); ICC profile "
            "'sRGB built-in' dropped (colours coded as stored, not converted)")
    assert f"5×4 ({note})" in line
    np.testing.assert_array_equal(decoded(path), RGB)
    assert bench_notes(path) == {"turned.png": note}
    plain = tmp_path / "plain.png"
    Image.fromarray(RGB).save(plain, exif=Image.Exif())  # orientation absent: nothing to state
    assert "(" not in compress_line(plain).split(":")[1].split(",")[0]


def _npz_declaring(path, shape, dtype="|u1", data=b"\0" * 1024) -> None:
    """An .npz whose images.npy header declares `shape` but holds only `data`."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images.npy", header.getvalue() + data)  # the header holds the magic


def test_npz_is_checked_against_the_pixel_cap_before_it_is_loaded(tmp_path):

    from igc.benchmark import sources
    from igc.errors import ImageError

    path = tmp_path / "bomb.npz"
    _npz_declaring(path, (400, 1000, 1000, 3))
    message = (f"{path}: 'images' declares 400×1000×1000×3 = 400000000 pixels, which exceeds "
               "the limit of 268435456 (possible decompression bomb; raise it with "
               "$IGC_MAX_PIXELS)")
    with pytest.raises(ImageError):  # warm up: imports are not the allocation measured
        sources.collect([path])
    tracemalloc.start()
    try:
        with pytest.raises(ImageError) as caught:
            sources.collect([path])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(caught.value) == message and peak < 1 << 20
    assert error_line(invoke("bench", "-c", "png", "--images", path)) == f"igc: error: {message}"
    wide = tmp_path / "wide.npz"
    _npz_declaring(wide, (10**6, 10**6, 10**6, 3), dtype="<u2")
    assert error_line(invoke("bench", "-c", "png", "--images", wide)) == (
        f"igc: error: {wide}: 'images' must be uint8 of shape (N, H, W, 3), got uint16 "
        "(1000000, 1000000, 1000000, 3)")


def test_npz_cap_follows_igc_max_pixels(tmp_path, monkeypatch):
    path = tmp_path / "set.npz"
    np.savez(path, images=np.zeros((3, 4, 5, 3), np.uint8))
    monkeypatch.setenv("IGC_MAX_PIXELS", "59")
    assert "declares 3×4×5×3 = 60 pixels, which exceeds the limit of 59" in error_line(
        invoke("bench", "-c", "png", "--images", path))
    monkeypatch.setenv("IGC_MAX_PIXELS", "60")
    assert invoke("bench", "-c", "png", "--images", path).exit_code == 0


def test_pixel_limit_applies_to_compress(monkeypatch):
    from igc.errors import ImageError

    image = np.zeros((6, 5, 3), np.uint8)
    monkeypatch.setenv("IGC_MAX_PIXELS", "29")
    with pytest.raises(ImageError, match=r"^image of 5×6 = 30 pixels exceeds the limit of 29 pixels "
                                         r"\(set IGC_MAX_PIXELS to raise it\)$"):
        igc.compress(image, model="uniform")
    monkeypatch.setenv("IGC_MAX_PIXELS", "30")
    np.testing.assert_array_equal(igc.decompress(igc.compress(image, model="uniform")), image)


def test_pixel_limit_applies_to_compress_with_imagegpt(monkeypatch, tiny_model):
    from igc.errors import ImageError

    monkeypatch.setenv("IGC_MAX_PIXELS", "29")
    with pytest.raises(ImageError, match="image of 5×6 = 30 pixels exceeds the limit of 29"):
        igc.compress(np.zeros((6, 5, 3), np.uint8), model=tiny_model)


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_workers_below_one_is_refused(photo_dir, workers):
    line = error_line(invoke("bench", "-c", "png", "--images", photo_dir, "--workers", workers))
    assert line == f"igc: error: --workers must be at least 1, got {workers}"


@pytest.mark.parametrize("shape", [(20000, 20000, 3), (100_000, 100_000, 3), (100_000, 100_000),
                                   (100_000, 100_000, 1), (100_000, 100_000, 4)])
def test_broadcast_views_beyond_the_pixel_limit_are_refused_without_a_copy(shape):
    """A broadcast view costs nothing to make; igc.compress used to copy one (1.2 GB for
    20000², MemoryError for 100000²) before checking its size."""

    from igc.errors import ImageError

    view = np.broadcast_to(np.uint8(255), shape)  # opaque, where an alpha channel is
    igc.compress(np.zeros((1, 1, 3), np.uint8), model="uniform")  # imports are not measured
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=rf"^image of {shape[1]}×{shape[0]} = "
                                             rf"{shape[0] * shape[1]} pixels exceeds "
                                             r"the limit of 268435456 pixels"):
            igc.compress(view, model="uniform")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_an_empty_name_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch):
    """`igc compress "$UNSET"` coded every image of the current folder (Path("") is "."); an
    empty name is refused by every command that reads images, and by the library."""
    monkeypatch.chdir(tmp_path)
    Image.fromarray(rgb(4, 4)).save(tmp_path / "here.png")
    for command in (["compress", ""], ["decompress", ""]):
        assert error_line(invoke(*command)) == (
            "igc: error: an input is an empty name (an unset variable?); give a file, a folder, "
            "or - for standard input")
    assert error_line(invoke("bench", "-c", "png", "-i", "", "-q")) == (
        "igc: error: an image path is an empty name (an unset variable?); give a file or a "
        "folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.png"]  # nothing was coded


def test_the_library_refuses_wrong_types_in_words():
    with pytest.raises(igc.UsageError, match="a model is a name or a folder, not 123"):
        igc.compress(rgb(4, 4), model=123)
    with pytest.raises(igc.UsageError, match=r"no compressors given; known: .*png"):
        igc.bench([rgb(4, 4)], [])


def test_the_library_refuses_what_it_cannot_use_in_words():
    """A second review's finds: each was a Python error (AttributeError, TypeError) or, for an
    option a compressor does not take, silence (a `modle=` typo coded with the default)."""
    pixels = rgb(4, 4)
    good = igc.compress(pixels, model="uniform")
    cases = [
        (lambda: igc.get_compressor("imagegpt", modle="/x"),
         "compressor 'imagegpt' takes no option 'modle'; it takes: model, "),
        (lambda: igc.get_compressor("png", level=3), "compressor 'png' takes no option 'level'"),
        (lambda: igc.get_compressor(None), "a compressor is named by a non-empty string, not None"),
        (lambda: igc.compress(pixels, model=""), "the model name '' is empty"),
        (lambda: igc.compress(pixels, model="uniform", progress=5),
         "progress must be a function or None, not 5"),
        (lambda: igc.decompress(good, progress=5), "progress must be a function or None"),
        (lambda: igc.report(None), "igc.report takes the result of igc.bench, not NoneType"),
        (lambda: igc.bench(None, ["png"]), "images must be a list of images"),
        (lambda: igc.bench([pixels], ["png"], workers="2"),
         "--workers must be a whole number, got '2'"),
        (lambda: igc.register_plugin(None), "a plugin is a module or an object"),
        (lambda: api.speed(backends=("int", "int")), "--backend 'int' is named twice"),
    ]
    for call, message in cases:
        with pytest.raises(igc.IgcError, match=re.escape(message)):
            call()
    assert "NoneType" not in [p["name"] for p in api.list_plugins()]
