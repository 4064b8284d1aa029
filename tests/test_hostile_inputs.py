"""Hostile inputs, round 2 (issue 16, items 4, 6 and 8): what strict mode cannot keep, limits on
every input, and the smaller option and API checks. Each error asserts its one `igc: error:` line.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from test_hostile import error_line, invoke

import igc

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


# -- 4. strict mode refuses what it cannot keep ----------------------------------------------


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


# -- 6. limits on every input ----------------------------------------------------------------


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
    import tracemalloc

    from igc.bench import sources
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


def _header_file(payload: bytes, declared: int | None = None) -> bytes:
    """A 2×2 uniform-model header declaring `declared` payload bytes (default: the payload's
    length), with a valid CRC, followed by `payload`."""
    import zlib

    from igc.core import container

    header = container.Header(height=2, width=2, tile=16, model_id="uniform",
                              fingerprint="0" * 16, checksum=0, region_checks=b"\0",
                              payload_length=0, batch=256)
    head = container.pack(header, b"")[:-3]  # drop the payload length (0) and the CRC
    head += container.encode_varint(len(payload) if declared is None else declared)
    return head + (zlib.crc32(head) & 0xFFFF).to_bytes(2, "little") + payload


def test_igc_reads_stop_at_the_declared_payload(tmp_path):
    import tracemalloc

    from igc.core import container
    from igc.errors import FormatError

    path = tmp_path / "padded.igc"
    path.write_bytes(_header_file(b"\0" * 8) + b"\0" * (32 << 20))
    message = f"corrupted file: {32 << 20} extra bytes after the payload"
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=message):
            container.read_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert error_line(invoke("info", path)) == f"igc: error: {path}: {message}"
    assert error_line(invoke("decompress", path, "-o", tmp_path / "x.png")) == (
        f"igc: error: {message}")


def test_igc_reads_from_an_endless_stream_are_bounded(tmp_path):
    """A FIFO fed more than igc may read: the reader stops after header + payload + 1 byte,
    so the writer gets a broken pipe long before it has written everything."""
    import threading

    fifo = tmp_path / "stream.igc"
    os.mkfifo(fifo)
    head = _header_file(b"\0" * 8)
    written = []

    def feed():
        sent = 0
        try:
            with open(fifo, "wb") as fh:
                fh.write(head)
                for _ in range(256):  # 64 MiB if nobody stops reading
                    fh.write(b"\0" * (256 << 10))
                    sent += 256 << 10
        except BrokenPipeError:
            pass
        written.append(sent)

    writer = threading.Thread(target=feed)
    writer.start()
    line = error_line(invoke("info", fifo))
    writer.join(timeout=60)
    assert line == f"igc: error: {fifo}: corrupted file: extra bytes after the payload"
    assert written and written[0] < 4 << 20


def test_declared_payload_larger_than_any_encoder_writes(tmp_path):
    path = tmp_path / "claims.igc"
    path.write_bytes(_header_file(b"", declared=10**12))
    line = error_line(invoke("info", path))
    assert line == (f"igc: error: {path}: corrupted header: a payload of 1000000000000 bytes "
                    "for 2x2 pixels (at most 320)")


def test_pixel_limit_applies_to_compress(monkeypatch):
    from igc.errors import ImageError

    image = np.zeros((6, 5, 3), np.uint8)
    monkeypatch.setenv("IGC_MAX_PIXELS", "29")
    with pytest.raises(ImageError, match=r"^image of 6x5 pixels exceeds the limit of 29 pixels "
                                         r"\(set IGC_MAX_PIXELS to raise it\)$"):
        igc.compress(image, model="uniform")
    monkeypatch.setenv("IGC_MAX_PIXELS", "30")
    np.testing.assert_array_equal(igc.decompress(igc.compress(image, model="uniform")), image)


def test_pixel_limit_applies_to_compress_with_imagegpt(monkeypatch, tiny_model):
    from igc.errors import ImageError

    monkeypatch.setenv("IGC_MAX_PIXELS", "29")
    with pytest.raises(ImageError, match="image of 6x5 pixels exceeds the limit of 29"):
        igc.compress(np.zeros((6, 5, 3), np.uint8), model=tiny_model)


# -- 8. smaller checks -----------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_workers_below_one_is_refused(photo_dir, workers):
    line = error_line(invoke("bench", "-c", "png", "--images", photo_dir, "--workers", workers))
    assert line == f"igc: error: --workers must be at least 1, got {workers}"


@pytest.mark.parametrize(("data", "kind"), [(10**12, "int"), ("IGC", "str"), (None, "NoneType"),
                                            (np.zeros(4, np.uint8), "ndarray")])
def test_decompress_and_info_take_bytes_only(data, kind):
    for function in (igc.decompress, igc.info):
        with pytest.raises(igc.UsageError) as caught:
            function(data)
        assert str(caught.value) == (f"igc.{function.__name__} expects the bytes of an .igc "
                                     f"file, got {kind}")
    good = igc.compress(RGB, model="uniform")
    for wrapped in (bytearray(good), memoryview(good)):
        np.testing.assert_array_equal(igc.decompress(wrapped), RGB)


def test_model_mismatch_repeats_the_model_given(tmp_path, tiny_model, other_tiny_model,
                                                monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(other_tiny_model).parent)
    given = f"./{Path(other_tiny_model).name}"
    path = tmp_path / "tiny.igc"
    path.write_bytes(igc.compress(RGB, model=tiny_model))
    line = error_line(invoke("decompress", path, "-o", tmp_path / "x.png", "--model", given))
    other = igc.get_compressor("imagegpt", model=other_tiny_model).model
    assert line == (
        f"igc: error: file was encoded with model {Path(tiny_model).name!r} (fingerprint "
        f"{container_fingerprint(path)}) but model {given!r} (model {other.name!r}, fingerprint "
        f"{other.fingerprint}) was given; decode without --model (igc finds the file's model by "
        f"its fingerprint) or with --model naming the folder that holds "
        f"{Path(tiny_model).name!r}")


def container_fingerprint(path) -> str:
    from igc.core import container

    return container.unpack(path.read_bytes())[0].fingerprint


def test_standard_input_is_read_no_further_than_an_image_can_need(monkeypatch):
    """`igc compress -` stops reading at 4 bytes per allowed pixel plus 1 MiB, so an endless
    stream (/dev/zero) is refused instead of filling memory."""
    import io

    from igc.core.image import read_image_stream
    from igc.errors import ImageError

    monkeypatch.setenv("IGC_MAX_PIXELS", "1000")
    limit = 4 * 1000 + (1 << 20)
    stream = io.BytesIO(bytes(limit + 10_000))
    with pytest.raises(ImageError, match=f"more than {limit:,} bytes"):
        read_image_stream(stream, label="standard input")
    assert stream.tell() == limit + 1  # not a byte further
    assert read_image_stream(io.BytesIO(b"x" * limit)) == b"x" * limit


@pytest.mark.parametrize("shape", [(20000, 20000, 3), (100_000, 100_000, 3), (100_000, 100_000),
                                   (100_000, 100_000, 1), (100_000, 100_000, 4)])
def test_broadcast_views_beyond_the_pixel_limit_are_refused_without_a_copy(shape):
    """A broadcast view costs nothing to make; igc.compress used to copy one (1.2 GB for
    20000², MemoryError for 100000²) before checking its size."""
    import tracemalloc

    from igc.errors import ImageError

    view = np.broadcast_to(np.uint8(255), shape)  # opaque, where an alpha channel is
    igc.compress(np.zeros((1, 1, 3), np.uint8), model="uniform")  # imports are not measured
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=rf"^image of {shape[0]}x{shape[1]} pixels exceeds "
                                             r"the limit of 268435456 pixels"):
            igc.compress(view, model="uniform")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
