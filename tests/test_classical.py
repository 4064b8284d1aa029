"""The classical baselines: exact round trips, real compression, clean errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from igc.compressors import classical
from igc.compressors.classical import COMPRESSORS
from igc.core.protocols import Compressor
from igc.errors import CodecUnavailable, FormatError, ImageError

AVAILABLE = [cls for cls in COMPRESSORS if cls.available() is None]
IDS = [cls.name for cls in AVAILABLE]


@pytest.fixture(scope="module")
def codecs():
    return {cls.name: cls() for cls in AVAILABLE}


def _smooth(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (h + w - 2)], -1)
    return img.astype(np.uint8)


def test_all_expected_codecs_exist_and_describe_themselves():
    names = [cls.name for cls in COMPRESSORS]
    assert names == ["png", "webp", "jxl", "jpeg2000", "jpegls", "zstd", "lzma"]
    for cls in COMPRESSORS:
        assert cls.lossless is True
        assert cls.description and "\n" not in cls.description
        reason = cls.available()
        assert reason is None or (isinstance(reason, str) and "\n" not in reason)


def test_this_environment_has_every_codec():
    # The project's dependencies provide all of them; a missing one means a broken install.
    assert {cls.name: cls.available() for cls in COMPRESSORS} == {
        cls.name: None for cls in COMPRESSORS
    }


@pytest.mark.parametrize("cls", AVAILABLE, ids=IDS)
def test_satisfies_protocol(cls, codecs):
    assert isinstance(codecs[cls.name], Compressor)


@pytest.mark.parametrize("cls", AVAILABLE, ids=IDS)
def test_round_trip_random(cls, codecs):
    codec = codecs[cls.name]
    img = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    data = codec.compress(img)
    assert isinstance(data, bytes)
    out = codec.decompress(data)
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (13, 17), (2, 300)])
@pytest.mark.parametrize("cls", AVAILABLE, ids=IDS)
def test_round_trip_odd_sizes(cls, shape, codecs):
    codec = codecs[cls.name]
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    for img in (
        rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
        np.full((*shape, 3), (0, 255, 7), dtype=np.uint8),  # extremes, constant
    ):
        np.testing.assert_array_equal(codec.decompress(codec.compress(img)), img)


@pytest.mark.parametrize("cls", AVAILABLE, ids=IDS)
def test_non_contiguous_input(cls, codecs):
    codec = codecs[cls.name]
    base = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    view = base[::2, ::3]
    np.testing.assert_array_equal(codec.decompress(codec.compress(view)), view)


@pytest.mark.parametrize("cls", AVAILABLE, ids=IDS)
def test_smooth_image_compresses(cls, codecs):
    img = _smooth()
    size = len(codecs[cls.name].compress(img))
    assert size < img.size, f"{cls.name}: {size} bytes for {img.size} raw"
    if cls.name not in ("zstd", "lzma"):  # image codecs predict gradients; byte matchers don't
        assert size < img.size / 4, f"{cls.name}: {size} bytes for {img.size} raw"


@pytest.mark.parametrize("cls", AVAILABLE, ids=IDS)
def test_rejects_non_rgb_input(cls, codecs):
    codec = codecs[cls.name]
    with pytest.raises(ImageError, match=r"uint8 RGB pixels of shape \(H, W, 3\).*\(4, 4\)"):
        codec.compress(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageError, match="float32"):
        codec.compress(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageError, match="zero size"):
        codec.compress(np.zeros((0, 4, 3), np.uint8))


@pytest.mark.parametrize("cls", AVAILABLE, ids=IDS)
def test_corrupt_data_is_format_error(cls, codecs):
    codec = codecs[cls.name]
    img = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    data = codec.compress(img)
    bad_inputs = [
        b"",
        b"garbage, not an image stream at all" * 3,
        data[: len(data) // 2],  # truncated
        data[:3],
    ]
    for bad in bad_inputs:
        with pytest.raises(FormatError) as info:
            codec.decompress(bad)
        message = str(info.value)
        assert message and "\n" not in message


@pytest.mark.parametrize("name", ["zstd", "lzma"])
def test_raw_header_is_small_and_checked(name, codecs):
    codec = codecs[name]
    img = np.zeros((32, 32, 3), np.uint8)
    data = codec.compress(img)
    assert data[:2] == codec.magic and data[2:4] == bytes([32, 32])  # 4-byte header
    other = codecs["lzma" if name == "zstd" else "zstd"]
    with pytest.raises(FormatError, match="bad magic"):
        codec.decompress(other.compress(img))
    # A header that disagrees with the payload is caught, not trusted.
    lying = data[:2] + bytes([33, 32]) + data[4:]
    with pytest.raises(FormatError):
        codec.decompress(lying)
    huge = data[:2] + b"\xff\xff\xff\x0f\xff\xff\xff\x0f" + data[4:]
    with pytest.raises(FormatError):
        codec.decompress(huge)


def test_jpegls_hp1_transform_is_exact():
    img = np.random.default_rng(4).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    coded = classical._hp1_forward(img)
    assert not np.array_equal(coded, img)
    np.testing.assert_array_equal(classical._hp1_inverse(coded), img)


def test_unavailable_codec_raises(monkeypatch):
    reason = "imagecodecs has no JPEG-XL support: pip install imagecodecs"
    monkeypatch.setattr(classical.JxlCompressor, "available", classmethod(lambda cls: reason))
    with pytest.raises(CodecUnavailable, match="'jxl' is unavailable: imagecodecs has no JPEG-XL"):
        classical.JxlCompressor()


def test_missing_imagecodecs_gives_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # import fails
    for cls in (classical.WebpCompressor, classical.JxlCompressor, classical.Jpeg2000Compressor):
        reason = cls.available()
        assert reason and "pip install imagecodecs" in reason
        with pytest.raises(CodecUnavailable, match="pip install imagecodecs"):
            cls()


def test_registration_hook_registers_every_class():
    from igc.plugins import builtins

    seen = []
    builtins.register_compressors(seen.append)
    assert seen == list(COMPRESSORS)


def test_module_import_is_cheap():
    code = (
        "import sys, igc.compressors.classical\n"
        "heavy = [m for m in ('imagecodecs', 'PIL', 'zstandard', 'lzma') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
