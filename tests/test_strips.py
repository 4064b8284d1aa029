"""Strips (format version 6): bands of rows coded as images of their own, decoded side by side.

A file in strips must decode to the exact pixels whatever the thread count, whatever its
shape; files without strips keep version 5's bytes; a strip table that does not fit its
payload, or streams swapped between strips, are refused in one line, never returned."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke, make_tiny_model, smooth_image

from igc.api import set_threads
from igc.codec import strips
from igc.core import container
from igc.errors import ChecksumError, FormatError, UsageError
from igc.plugins.compose import compose

FIXTURE = Path(__file__).parent / "data" / "igc-rgb16-v2-ctx3-strips-v6.igc"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("strips-tiny"), seed=5)


@pytest.mark.parametrize(("shape", "context", "rows"), [
    ((512, 768), 3, 256), ((768, 512), 3, 192), ((321, 481), 3, 161), ((481, 321), 3, 241),
    ((383, 383), 3, 192), ((256, 256), 3, 0), ((2160, 3840), 3, 135), ((3000, 4000), 2, 188),
    ((4000, 3000), 1, 0), ((512, 768), 0, 0), ((64, 100_000), 3, 0), ((100_000, 64), 3, 0)])
def test_the_default_cut_is_the_most_strips_that_keep_the_waves_long(shape, context, rows):
    """A power of two of strips, as many as keep every strip's anti-diagonals at 8 windows or
    more on average (the rule that makes modes 2 and 3 the default), and no more."""
    got = strips.default_strip_rows(*shape, context, 16)
    assert got == rows
    if got:
        count = len(strips.spans(shape[0], got))
        assert count & (count - 1) == 0
        last = shape[0] - (count - 1) * got  # the shortest strip decides
        grid = ((last - 1 + 14) // 15, (shape[1] - 1 + 14) // 15)  # windows 15 pixels apart
        assert grid[0] * grid[1] >= 8 * (grid[0] + grid[1] - 1)
        assert not strips.keeps_waves(*shape, 2 * count, 16)


@pytest.mark.parametrize(("shape", "context", "rows"), [
    ((1, 29), 3, 1), ((29, 1), 3, 4), ((23, 17), 3, 8), ((23, 17), 2, 7), ((23, 17), 1, 10),
    ((23, 17), 0, 9), ((9, 9), 3, 8)])
def test_strips_round_trip_exactly_on_odd_shapes(tiny, shape, context, rows, two_threads):
    image = smooth_image(*shape, seed=sum(shape))
    codec = compose(tiny, context=context, strip_rows=rows)
    result = codec.encode(image)
    header, _ = container.unpack(result.data)
    expect = rows if rows < shape[0] else 0
    assert header.strip_rows == expect
    assert header.version == (container.STRIPS_VERSION if expect else container.VERSION)
    np.testing.assert_array_equal(codec.decode(result.data), image)
    # the estimate runs the encoder's loop on the same strips: the file's model bits exactly
    assert codec.estimate_bits(image) == pytest.approx(result.model_bits, rel=1e-12)


def test_one_thread_and_two_decode_the_same_pixels_and_encode_the_same_bytes(tiny):
    image = smooth_image(30, 26, seed=4)
    codec = compose(tiny, context=3, strip_rows=9)
    import torch

    before = torch.get_num_threads()
    try:
        set_threads(1)
        one = codec.encode(image).data
        set_threads(2)
        two = codec.encode(image).data
        assert one == two
        np.testing.assert_array_equal(codec.decode(one), image)
    finally:
        set_threads(before)


def test_progress_counts_every_strip_to_the_end(tiny, two_threads):
    image = smooth_image(24, 20, seed=2)
    codec = compose(tiny, context=3, strip_rows=8)
    seen = []
    data = codec.encode(image, progress=lambda done, total: seen.append((done, total))).data
    assert seen[-1][0] == seen[-1][1] == 24 * 20 * 3
    back = []
    codec.decode(data, progress=lambda done, total: back.append((done, total)))
    assert back[-1] == (24 * 20 * 3, 24 * 20 * 3)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(back))


def test_strips_decode_independently_of_each_other(tiny):
    """Each strip is an image coded alone: the second strip's stream, cut out with its header
    as a version-5 file of its rows, decodes to those rows."""
    image = smooth_image(20, 18, seed=8)
    codec = compose(tiny, context=3, strip_rows=12)
    payload = container.unpack(codec.encode(image).data)[1]
    second = strips.split_payload(payload, 2)[1]
    lone = compose(tiny, context=3, strip_rows=0).encode(image[12:]).data
    assert container.unpack(lone)[1] == second


def _strip_file(tiny) -> tuple[bytes, np.ndarray]:
    image = smooth_image(20, 18, seed=9)
    return compose(tiny, context=3, strip_rows=7).encode(image).data, image


def test_swapped_strip_streams_are_refused_not_returned(tiny):
    data, _ = _strip_file(tiny)
    header, payload = container.unpack(data)
    a, b, c = strips.split_payload(payload, 3)
    swapped = strips.join_payloads([b, a, c])
    bad = container.pack(replace(header, payload_length=len(swapped)), swapped)
    with pytest.raises((ChecksumError, FormatError)):
        compose(tiny).decode(bad)


@pytest.mark.parametrize("cut", ["table", "lengths"])
def test_a_strip_table_that_does_not_fit_is_refused_in_one_line(tiny, cut, tmp_path):
    data, _ = _strip_file(tiny)
    header, payload = container.unpack(data)
    # a table that ends inside its varint, or a first strip longer than the payload
    payload = (b"\xff\xff" if cut == "table"
               else container.encode_varint(len(payload) * 4) + payload)
    bad = container.pack(replace(header, payload_length=len(payload)), payload)
    with pytest.raises(FormatError, match=r"corrupted file: .*strips"):
        compose(tiny).decode(bad)
    (tmp_path / "a.igc").write_bytes(bad)
    out = invoke("decompress", tmp_path / "a.igc", "-m", tiny, "-o", tmp_path / "a.png")
    lines = out.output.strip().splitlines()
    assert out.exit_code != 0 and len(lines) == 1 and lines[0].startswith("igc: error: ")
    assert not (tmp_path / "a.png").exists()


@pytest.mark.parametrize("rows", [0, 21])
def test_strip_rows_outside_the_image_are_refused_when_the_header_is_read(rows):
    h = container.Header(20, 18, 4, "m", "00" * 8, 0, b"", 3, 8,
                         version=container.STRIPS_VERSION, strip_rows=rows)
    with pytest.raises(FormatError, match=f"strips of {rows} rows in an image of 20"):
        container.unpack(container.pack(h, b"xyz"))


def test_version_5_files_are_unchanged_and_version_6_adds_one_field():
    h = container.Header(20, 18, 4, "igc-rgb16-v2", "00" * 8, 0, b"", 3, 8)
    v5 = container.pack(h, b"xyz")
    v6 = container.pack(replace(h, version=6, strip_rows=10), b"xyz")
    assert len(v6) == len(v5) + 1 and v5[3] == 5 and v6[3] == 6
    assert container.unpack(v6)[0].strip_rows == 10 and container.unpack(v5)[0].strip_rows == 0


def test_a_lossy_codec_takes_no_strips():
    from types import SimpleNamespace

    codec = SimpleNamespace(tokenizer=SimpleNamespace(lossless=False), residual=False,
                            mode="palette")
    with pytest.raises(UsageError, match="strips code lossless tokens"):
        strips.check_strips(codec, 16)
    with pytest.raises(UsageError, match=r"0 \(no strips\) or more"):
        strips.check_strips(codec, -1)


def test_cli_compress_takes_strip_rows_and_info_names_them(tiny, tmp_path):
    from PIL import Image

    Image.fromarray(smooth_image(21, 13, seed=3)).save(tmp_path / "a.png")
    out = tmp_path / "a.igc"
    result = invoke("compress", tmp_path / "a.png", "-m", tiny, "-o", out, "--context", "3",
                    "--strip-rows", "8")
    assert result.exit_code == 0, result.output
    assert container.unpack(out.read_bytes())[0].strip_rows == 8
    info = invoke("info", out)
    assert "bands of 8 rows, each coded on its own" in info.output
    assert "igc file version 6" in info.output
    back = invoke("decompress", out, "-m", tiny, "-o", tmp_path / "b.png")
    assert back.exit_code == 0, back.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")),
                                  smooth_image(21, 13, seed=3))


def test_the_v6_fixture_decodes_on_any_machine():
    """igc-rgb16-v2 (the default when it was written), numerics 2, context mode 3, three strips of
    a 40×48 image."""
    from PIL import Image

    data = FIXTURE.read_bytes()
    header, _ = container.unpack(data)
    assert (header.version, header.context, header.numerics, header.strip_rows) == (6, 3, 2, 16)
    want = np.asarray(Image.open(FIXTURE.with_suffix(".png")))
    np.testing.assert_array_equal(want, smooth_image(40, 48, seed=12))
    np.testing.assert_array_equal(compose(header.model_id).decode(data), want)


@pytest.mark.parametrize("option,value,message", [
    ("batch", -1, "batch must be 0 or more, got -1"),
    ("lane", -3, "lane must be 0 or more, got -3"),
    ("strip_rows", -2, "strip rows must be 0 or more, got -2"),
    ("strip_rows", 2.5, "strip rows must be a whole number, not 2.5"),
    ("batch", True, "batch must be a whole number, not True"),
])
def test_counts_other_than_whole_numbers_are_refused_before_coding(tiny, option, value, message):
    """A negative batch or lane once reached the header's varint writer, which looped forever
    on it (its shifts never reach 0); now the codec refuses it in one line."""
    with pytest.raises(UsageError, match=message):
        compose(tiny, **{option: value})
    with pytest.raises(ValueError, match="a varint holds a count, not -1"):
        container.encode_varint(-1)
