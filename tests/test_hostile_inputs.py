"""Hostile inputs, round 2 (issue 16, items 4, 6 and 8): what strict mode cannot keep, limits on
every input, and the smaller option and API checks. Each error asserts its one `igc: error:` line.
"""

from __future__ import annotations

import json

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
    assert "plain.ppm.igc: 2×1, 48 bytes" in compress_line(path)  # no note: nothing changed
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
