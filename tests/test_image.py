"""Loading images into 8-bit RGB honestly, and where bench images come from."""

from __future__ import annotations

import importlib.util
import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from igc.benchmark import sources
from igc.benchmark.sources import ImageRef, center_crop, collect, gallery, pick
from igc.core.image import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    as_rgb_array,
    encode_png,
    load_image,
    require_rgb,
    resolve_max_pixels,
    save_png,
)
from igc.errors import ImageError, UsageError


def _rgb(h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(tmp_path, name, image, **kw):
    path = tmp_path / name
    image.save(path, **kw)
    return path


def _load_both(path):
    return load_image(path, strict=True), load_image(path, strict=False)


# -- exact cases: the same in strict and non-strict mode ------------------------------------


def test_rgb_png_unchanged(tmp_path):
    px = _rgb()
    path = _save(tmp_path, "a.png", Image.fromarray(px))
    for loaded in _load_both(path):
        assert loaded.note == ""
        assert loaded.name == "a.png" and loaded.source == str(path)
        assert loaded.pixels.dtype == np.uint8 and loaded.pixels.flags.c_contiguous
        np.testing.assert_array_equal(loaded.pixels, px)


def test_grayscale_replicated(tmp_path):
    gray = _rgb()[:, :, 0]
    path = _save(tmp_path, "g.png", Image.fromarray(gray, "L"))
    for loaded in _load_both(path):
        assert loaded.note == "grayscale → RGB (replicated)"
        np.testing.assert_array_equal(loaded.pixels, np.repeat(gray[:, :, None], 3, 2))


def test_one_bit_replicated(tmp_path):
    bits = _rgb()[:, :, 0] > 127
    path = _save(tmp_path, "b.png", Image.fromarray(bits).convert("1"))
    for loaded in _load_both(path):
        assert "1-bit → RGB" in loaded.note and "replicated" in loaded.note
        np.testing.assert_array_equal(loaded.pixels[:, :, 1], np.where(bits, 255, 0))
        assert (loaded.pixels == loaded.pixels[:, :, :1]).all()


def _palette_image(transparency=None):
    idx = (np.arange(30).reshape(6, 5) % 4).astype(np.uint8)
    im = Image.fromarray(idx, "P")
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
    im.putpalette(palette + [0] * (768 - len(palette)))
    if transparency is not None:
        im.info["transparency"] = transparency
    expected = np.array(palette, np.uint8).reshape(4, 3)[idx]
    return im, idx, expected


def test_palette_expanded(tmp_path):
    im, _, expected = _palette_image()
    path = _save(tmp_path, "p.png", im)
    for loaded in _load_both(path):
        assert loaded.note == "palette → RGB (exact)"
        np.testing.assert_array_equal(loaded.pixels, expected)


def test_palette_with_transparency_is_treated_as_rgba(tmp_path):
    im, _, expected = _palette_image(transparency=bytes([255, 0, 255, 255]))
    path = _save(tmp_path, "pt.png", im, transparency=bytes([255, 0, 255, 255]))
    with pytest.raises(ImageError, match=r"pt\.png has a non-opaque alpha channel; igc codes RGB"):
        load_image(path, strict=True)
    loaded = load_image(path, strict=False)
    assert loaded.note == "palette → RGBA (exact); alpha dropped (not coded)"
    np.testing.assert_array_equal(loaded.pixels, expected)


def test_palette_with_unused_transparency_is_exact(tmp_path):
    # Index 3 is transparent but never used: every pixel is opaque.
    _, idx, _ = _palette_image()
    im = Image.fromarray(np.minimum(idx, 2), "P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    path = _save(tmp_path, "pu.png", im, transparency=3)
    for loaded in _load_both(path):
        assert loaded.note == "palette → RGBA (exact); opaque alpha dropped"


def test_rgba_opaque_alpha_dropped(tmp_path):
    px = _rgb()
    rgba = np.dstack([px, np.full(px.shape[:2], 255, np.uint8)])
    path = _save(tmp_path, "o.png", Image.fromarray(rgba, "RGBA"))
    for loaded in _load_both(path):
        assert loaded.note == "opaque alpha dropped"
        np.testing.assert_array_equal(loaded.pixels, px)


def test_rgba_non_opaque_strict_refuses_bench_drops(tmp_path):
    px = _rgb()
    alpha = np.full(px.shape[:2], 255, np.uint8)
    alpha[0, 0] = 128
    path = _save(tmp_path, "t.png", Image.fromarray(np.dstack([px, alpha]), "RGBA"))
    with pytest.raises(ImageError) as info:
        load_image(path, strict=True)
    assert str(info.value) == f"{path} has a non-opaque alpha channel; igc codes RGB only"
    loaded = load_image(path, strict=False)
    assert loaded.note == "alpha dropped (not coded)"
    np.testing.assert_array_equal(loaded.pixels, px)


def test_la_image(tmp_path):
    gray = _rgb()[:, :, 0]
    alpha = np.full(gray.shape, 255, np.uint8)
    path = _save(tmp_path, "la.png", Image.fromarray(np.dstack([gray, alpha]), "LA"))
    for loaded in _load_both(path):
        assert loaded.note == "opaque alpha dropped; grayscale → RGB (replicated)"
        np.testing.assert_array_equal(loaded.pixels[:, :, 2], gray)


# -- inexact cases: refused when strict, converted with a note otherwise ---------------------


def test_16bit_grayscale(tmp_path):
    values = (np.arange(30, dtype=np.uint16).reshape(6, 5) * 2000).astype(np.uint16)
    path = _save(tmp_path, "i16.png", Image.fromarray(values))
    with pytest.raises(ImageError, match=r"i16\.png: 16-bit image: igc codes 8-bit RGB only"):
        load_image(path, strict=True)
    loaded = load_image(path, strict=False)
    assert loaded.note == "16-bit → 8-bit (high byte); grayscale → RGB (replicated)"
    np.testing.assert_array_equal(loaded.pixels[:, :, 0], values >> 8)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png16_rgb(values: np.ndarray) -> bytes:
    h, w, _ = values.shape
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def test_16bit_rgb_png(tmp_path):
    values = np.random.default_rng(5).integers(0, 65536, (4, 3, 3), dtype=np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png16_rgb(values))
    with pytest.raises(ImageError, match="16-bit image: igc codes 8-bit RGB only"):
        load_image(path, strict=True)
    loaded = load_image(path, strict=False)
    assert loaded.note == "16-bit → 8-bit (high byte)"
    np.testing.assert_array_equal(loaded.pixels, values >> 8)


def test_32bit_integer_and_float(tmp_path):
    ints = np.arange(30, dtype=np.int32).reshape(6, 5) * 100_000
    path = _save(tmp_path, "i32.tif", Image.fromarray(ints, "I"))
    with pytest.raises(ImageError, match="32-bit image"):
        load_image(path, strict=True)
    loaded = load_image(path, strict=False)
    assert "min–max scaled" in loaded.note and loaded.pixels[-1, -1, 0] == 255

    floats = np.linspace(0, 1, 30, dtype=np.float32).reshape(6, 5)
    path = _save(tmp_path, "f.tif", Image.fromarray(floats, "F"))
    with pytest.raises(ImageError, match="float image: igc codes 8-bit RGB only"):
        load_image(path, strict=True)
    loaded = load_image(path, strict=False)
    assert loaded.note.startswith("float [0, 1] → 8-bit")
    assert loaded.pixels[0, 0, 0] == 0 and loaded.pixels[-1, -1, 0] == 255


@pytest.mark.parametrize(("mode", "fmt"), [("CMYK", "TIFF"), ("CMYK", "JPEG"), ("LAB", "TIFF")])
def test_other_colour_spaces(tmp_path, mode, fmt):
    im = Image.fromarray(_rgb(8, 8)).convert(mode) if mode != "LAB" else Image.new(mode, (8, 8))
    path = _save(tmp_path, f"x.{fmt.lower()}", im, format=fmt)
    with pytest.raises(ImageError, match=f"{mode} image: converting it to RGB is not exact"):
        load_image(path, strict=True)
    loaded = load_image(path, strict=False)
    assert loaded.note == f"{mode} → RGB (Pillow conversion, not exact)"
    assert loaded.pixels.shape == (8, 8, 3)


def test_animated_gif(tmp_path):
    frames = [Image.fromarray(_rgb(seed=i)).convert("P") for i in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with pytest.raises(ImageError, match=r"anim\.gif: animated or multi-page image \(3 frames\)"):
        load_image(path, strict=True)
    loaded = load_image(path, strict=False)
    assert loaded.note.startswith("first of 3 frames")
    assert loaded.pixels.shape == (6, 5, 3)


# -- unreadable files --------------------------------------------------------------------------


def test_missing_empty_text_truncated_directory(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.png: no such file"):
        load_image(tmp_path / "nope.png", strict=False)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png: empty file \(0 bytes\)"):
        load_image(empty, strict=False)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    with pytest.raises(ImageError, match=r"notes\.png: not an image file"):
        load_image(text, strict=False)
    good = _save(tmp_path, "good.png", Image.fromarray(_rgb(64, 64)))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageError, match=r"cut\.png: unreadable or corrupt image"):
        load_image(cut, strict=False)
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path, strict=False)


def test_zero_size_image(tmp_path):
    path = tmp_path / "zero.ppm"
    path.write_bytes(b"P6\n0 4\n255\n")
    with pytest.raises(ImageError, match=r"zero\.ppm: .*(zero size|unreadable|not an image)"):
        load_image(path, strict=False)


def test_messages_are_one_line_and_no_warning_escapes(tmp_path):
    text = tmp_path / "bad.gif"
    text.write_bytes(b"GIF89a" + b"\x00" * 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError) as info:
            load_image(text, strict=False)
        im, _, _ = _palette_image(transparency=bytes([255, 0, 255, 255]))
        path = _save(tmp_path, "pt.png", im, transparency=bytes([255, 0, 255, 255]))
        load_image(path, strict=False)
    assert "\n" not in str(info.value) and "bad.gif" in str(info.value)


def test_decompression_bomb_checked_from_header(tmp_path, monkeypatch):
    pillow_limit = Image.MAX_IMAGE_PIXELS
    path = _save(tmp_path, "big.png", Image.fromarray(_rgb(20, 30)))
    with pytest.raises(ImageError, match=r"big\.png: 30×20 = 600 pixels exceeds the limit of 500"):
        load_image(path, strict=False, max_pixels=500)
    assert load_image(path, strict=False, max_pixels=600).pixels.shape == (20, 30, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "100")
    with pytest.raises(ImageError, match="exceeds the limit of 100"):
        load_image(path, strict=False)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(UsageError, match="IGC_MAX_PIXELS must be a positive integer"):
        load_image(path, strict=False)
    monkeypatch.delenv(MAX_PIXELS_ENV)
    assert resolve_max_pixels() == DEFAULT_MAX_PIXELS == 2**28
    # Pillow's own global limit is restored afterwards.
    assert pillow_limit == Image.MAX_IMAGE_PIXELS


def test_header_claiming_huge_size_is_refused_before_decoding(tmp_path):
    # A PNG header claiming 100000×100000 pixels with almost no data.
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + _png_chunk(b"IEND", b"")
    )
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=r"bomb\.png: 100000×100000 = 10000000000 pixels exceeds"):
        load_image(path, strict=False)


# -- arrays from library users -----------------------------------------------------------------


def test_as_rgb_array_accepts():
    px = _rgb()
    np.testing.assert_array_equal(as_rgb_array(px), px)
    gray = px[:, :, 0]
    np.testing.assert_array_equal(as_rgb_array(gray), np.repeat(gray[:, :, None], 3, 2))
    np.testing.assert_array_equal(as_rgb_array(gray[:, :, None])[:, :, 2], gray)
    opaque = np.dstack([px, np.full(px.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(as_rgb_array(opaque), px)
    assert as_rgb_array(px[:, ::2]).flags.c_contiguous


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        (np.zeros((4, 4, 3), np.float64), r"got a float64 array of shape \(4, 4, 3\)"),
        (np.zeros((4, 4, 3), np.uint16), r"uint16 array of shape \(4, 4, 3\)"),
        (np.zeros((4, 4, 2), np.uint8), r"uint8 array of shape \(4, 4, 2\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), r"uint8 array of shape \(2, 4, 4, 3\)"),
        (np.zeros((0, 4, 3), np.uint8), r"zero size.*\(0, 4, 3\)"),
        (np.zeros((4, 4, 4), np.uint8), "non-opaque alpha"),
        ("a string", "got str"),
    ],
)
def test_as_rgb_array_rejects(bad, pattern):
    with pytest.raises(ImageError, match=pattern):
        as_rgb_array(bad)


def test_require_rgb_is_strict():
    with pytest.raises(ImageError, match=r"\(H, W, 3\).*\(4, 4\)"):
        require_rgb(np.zeros((4, 4), np.uint8))


def test_save_png_round_trip(tmp_path):
    px = _rgb(7, 9)
    save_png(px, tmp_path / "out.png")
    loaded = load_image(tmp_path / "out.png", strict=True)
    assert loaded.note == ""
    np.testing.assert_array_equal(loaded.pixels, px)
    with pytest.raises(ImageError, match="cannot write PNG"):
        save_png(px, tmp_path / "missing-dir" / "out.png")
    data = encode_png(px)
    assert data.startswith(b"\x89PNG")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), px)


# -- sources -----------------------------------------------------------------------------------


def test_gallery_has_offline_rgb_photos():
    refs = gallery()
    names = [r.name for r in refs]
    assert names == sorted(names)
    # scikit-image bundles 9 colour photographs (astronaut ... rocket), matplotlib one more.
    assert len(refs) >= 9
    if importlib.util.find_spec("matplotlib") is not None:
        assert len(refs) >= 10 and "grace_hopper.jpg" in names
    assert not {"logo.png", "color.png", "chessboard_RGB.png", "phantom.png"} & set(names)
    for ref in refs[:3]:  # decoding all of them (retina, hubble) is slow on a busy machine
        loaded = ref.load(strict=True)
        # coded as stored; a colour profile some of them carry is stated, not applied
        assert loaded.note in ("", "ICC profile 'sRGB IEC61966-2.1' dropped (colours coded as "
                                   "stored, not converted)"), loaded.note
        assert loaded.pixels.ndim == 3 and loaded.pixels.shape[2] == 3


def test_gallery_without_skimage(monkeypatch):
    monkeypatch.setattr(sources, "_gallery", lambda: ())
    with pytest.raises(ImageError, match="no gallery images found"):
        gallery()


def _refs(n):
    return [ImageRef(f"img{i:02d}.png", f"/x/img{i:02d}.png") for i in range(n)]


def test_pick_is_seeded_and_sorted():
    refs = _refs(12)
    a, b = pick(refs, 5, seed=3), pick(refs, 5, seed=3)
    assert a == b and len(a) == 5 and len(set(a)) == 5
    assert [r.name for r in a] == sorted(r.name for r in a)
    assert any(pick(refs, 5, seed=s) != a for s in range(4, 10))
    assert pick(refs, 12, seed=0) == refs
    assert pick(refs, None) == refs


def test_pick_bad_counts():
    refs = _refs(12)
    with pytest.raises(UsageError) as info:
        pick(refs, 50, seed=0)
    assert str(info.value) == "--count 50 is larger than the 12 images available"
    for bad in (0, -1):
        with pytest.raises(UsageError, match="--count must be at least 1"):
            pick(refs, bad, seed=0)


def test_collect_files_and_directories(tmp_path):
    for name in ("b.png", "a.jpg", "c.TIFF", "notes.txt", ".hidden.png"):
        target = tmp_path / name
        if name.endswith(".txt"):
            target.write_text("x")
        else:
            fmt = {"jpg": "JPEG", "tiff": "TIFF"}.get(name.rsplit(".", 1)[1].lower(), "PNG")
            Image.fromarray(_rgb()).save(target, format=fmt)
    (tmp_path / "sub").mkdir()
    Image.fromarray(_rgb()).save(tmp_path / "sub" / "d.png")
    refs = collect([tmp_path])
    assert [r.name for r in refs] == ["a.jpg", "b.png", "c.TIFF"]
    assert [r.name for r in collect([tmp_path], recursive=True)][-1] == "d.png"
    assert [r.name for r in collect([tmp_path / "b.png", tmp_path])] == [
        "b.png",
        "a.jpg",
        "c.TIFF",
    ]
    assert refs[1].load().pixels.shape == (6, 5, 3)


def test_collect_errors(tmp_path):
    with pytest.raises(ImageError, match="no such file or directory"):
        collect([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError) as info:
        collect([tmp_path / "empty"])
    assert str(info.value).startswith(f"no images found in {tmp_path / 'empty'} (looked for *.png")


def test_collect_name_collisions_use_paths(tmp_path):
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
        Image.fromarray(_rgb()).save(tmp_path / d / "same.png")
    names = [r.name for r in collect([tmp_path / "one", tmp_path / "two"])]
    assert len(set(names)) == 2 and all(n.endswith("same.png") for n in names)


def test_npz_source(tmp_path):
    images = np.random.default_rng(6).integers(0, 256, (4, 8, 9, 3), dtype=np.uint8)
    path = tmp_path / "set.npz"
    np.savez(path, images=images, labels=np.arange(4))
    refs = collect([path])
    assert [r.name for r in refs] == [f"set.npz[{i}]" for i in range(4)]
    loaded = refs[2].load()
    assert loaded.name == "set.npz[2]" and loaded.note == ""
    np.testing.assert_array_equal(loaded.pixels, images[2])
    loaded.pixels[0, 0] = 0  # a copy: the cached array is untouched
    np.testing.assert_array_equal(refs[2].load().pixels, images[2])
    with pytest.raises(ImageError, match="exceeds the limit of 10"):
        refs[0].load(max_pixels=10)


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        ({"pixels": np.zeros((1, 2, 2, 3), np.uint8)}, r"no 'images' array .*found: pixels"),
        ({"images": np.zeros((1, 2, 2, 3), np.float32)}, r"uint8 of shape \(N, H, W, 3\)"),
        ({"images": np.zeros((2, 2, 3), np.uint8)}, r"got uint8 \(2, 2, 3\)"),
        ({"images": np.zeros((0, 2, 2, 3), np.uint8)}, "no images found"),
    ],
)
def test_npz_errors(tmp_path, arrays, pattern):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ImageError, match=pattern):
        collect([path])


def test_corrupt_npz(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ImageError, match=r"bad\.npz: not a readable \.npz file"):
        collect([path])


def test_center_crop():
    px = np.arange(10 * 7 * 3, dtype=np.uint8).reshape(10, 7, 3)
    out = center_crop(px, 4)
    assert out.shape == (4, 4, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, px[3:7, 1:5])
    assert center_crop(px, (2, 100)).shape == (2, 7, 3)  # short side kept whole
    assert center_crop(px, 64).shape == px.shape
    with pytest.raises(UsageError, match="at least 1"):
        center_crop(px, 0)


def test_loaded_bytes_via_pillow_buffer_do_not_matter():
    # load_image takes paths only; a BytesIO is a usage mistake reported as ImageError.
    with pytest.raises((ImageError, TypeError)):
        load_image(io.BytesIO(b"x"), strict=False)  # type: ignore[arg-type]
