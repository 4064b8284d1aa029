"""The real codec: exact round trips, file size against the model's code length, bad files."""

import subprocess
import sys

import numpy as np
import pytest

from igc import decompress, get_compressor
from igc.coders.range import RangeCoder
from igc.core import container
from igc.errors import ChecksumError, FormatError, ModelError, ModelMismatchError

ODD_SIZES = [(1, 1), (1, 11), (11, 1), (4, 4), (5, 9), (12, 12), (13, 7), (17, 23)]


@pytest.mark.parametrize("size", ODD_SIZES)
def test_imagegpt_round_trip_odd_sizes(tiny_model, size, rng):
    comp = get_compressor("imagegpt", model=tiny_model)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    result = comp.compress_with_stats(image)
    np.testing.assert_array_equal(comp.decompress(result.data), image)
    # the range coder adds at most one 32-bit word of flush plus 0.1% over the model's bits
    payload_bits = (len(result.data) - result.header_bytes) * 8
    assert payload_bits <= result.model_bits * 1.001 + 64
    assert result.header_bytes <= 64


def test_many_tiles_and_small_batches(tiny_model, rng):
    comp = get_compressor("imagegpt", model=tiny_model, batch=5)  # 30 tiles in 6 batches
    image = rng.integers(0, 256, (21, 22, 3), dtype=np.uint8)
    data = comp.compress(image)
    assert container.unpack(data)[0].batch == 5
    np.testing.assert_array_equal(get_compressor("imagegpt", model=tiny_model).decompress(data), image)


def test_channel_major_round_trip(tiny_model, rng):
    comp = get_compressor("imagegpt", model=tiny_model, order="channel")
    image = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    data = comp.compress(image)
    np.testing.assert_array_equal(decompress(data, tiny_model), image)


def test_model_bits_match_one_shot_estimate(tiny_model, rng, monkeypatch):
    comp = get_compressor("imagegpt", model=tiny_model)
    image = rng.integers(0, 256, (9, 10, 3), dtype=np.uint8)
    stepped = comp.compress_with_stats(image).model_bits
    # numerics 2 quantizes the model: within the bound of 0.5% of the float bits
    assert abs(comp.estimate_bits(image) - stepped) < 5e-3 * stepped
    with monkeypatch.context() as m:  # the float step: only float32 rounding apart
        m.setattr(comp.codec.model, "numerics", 1, raising=False)
        fused = comp.compress_with_stats(image).model_bits
    assert abs(comp.estimate_bits(image) - fused) < 1e-4 * fused


def test_uniform_costs_exactly_8_bits(rng):
    comp = get_compressor("uniform")
    image = rng.integers(0, 256, (30, 31, 3), dtype=np.uint8)
    result = comp.compress_with_stats(image)
    assert result.model_bits == pytest.approx(30 * 31 * 3 * 8)
    payload = len(result.data) - result.header_bytes
    assert 30 * 31 * 3 <= payload <= 30 * 31 * 3 + 8
    np.testing.assert_array_equal(decompress(result.data), image)


def test_header_round_trip():
    h = container.Header(height=300, width=7, tile=16, model_id="igc-rgb16",
                         fingerprint="0123456789abcdef", checksum=0xDEADBEEF,
                         region_checks=b"\x01\x02\x03", payload_length=5, batch=256,
                         order="channel")
    data = container.pack(h, b"abcde")
    parsed, payload = container.unpack(data)
    assert parsed == h and payload == b"abcde"
    assert len(data) - 5 <= 64


def test_wrong_model_is_refused_naming_both(tiny_model, other_tiny_model, rng):
    data = get_compressor("imagegpt", model=tiny_model).compress(rng.integers(0, 256, (4, 4, 3), np.uint8))
    with pytest.raises(ModelMismatchError, match="fingerprint") as info:
        decompress(data, other_tiny_model)
    assert "tiny-imagegpt" in str(info.value) and "other-imagegpt" in str(info.value)


@pytest.fixture
def encoded(tiny_model, rng):
    image = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
    return image, get_compressor("imagegpt", model=tiny_model).compress(image)


def test_truncated_file(tiny_model, encoded):
    _, data = encoded
    for cut in (2, 10, len(data) - 3):
        with pytest.raises(FormatError, match=r"truncated|magic"):
            decompress(data[:cut], tiny_model)


def test_foreign_file(tiny_model):
    with pytest.raises(FormatError, match="not an igc file"):
        decompress(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, tiny_model)


def test_corrupted_header(tiny_model, encoded):
    _, data = encoded
    bad = bytearray(data)
    bad[6] ^= 0x01  # inside the size fields
    with pytest.raises(FormatError, match="header checksum"):
        decompress(bytes(bad), tiny_model)


def test_corrupted_payload_never_returns_pixels(tiny_model, encoded):
    image, data = encoded
    header_len = len(data) - container.unpack(data)[0].payload_length
    for offset in (header_len, header_len + 7, len(data) - 1):
        bad = bytearray(data)
        bad[offset] ^= 0x5A
        try:
            out = decompress(bytes(bad), tiny_model)
        except FormatError as exc:
            assert isinstance(exc, ChecksumError) or "range decoder" in str(exc)
        else:  # a flip that changes no decoded symbol must give the exact pixels
            np.testing.assert_array_equal(out, image)


def test_checksum_mismatch_names_regions(tiny_model, rng):
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    data = get_compressor("imagegpt", model=tiny_model).compress(image)
    header, payload = container.unpack(data)
    header.checksum ^= 1
    with pytest.raises(ChecksumError, match="checksum"):
        decompress(container.pack(header, payload), tiny_model)


def test_missing_model(encoded, tmp_path):
    _, data = encoded
    with pytest.raises(ModelError, match=r"needs model .* not among the models shipped"):
        decompress(data)  # the header names a folder that only existed in the test
    with pytest.raises(ModelError, match=r"no config\.json"):
        decompress(data, str(tmp_path))


def test_coder_ideal_bits():
    probs = np.full((4, 256), 1 / 256)
    assert RangeCoder().ideal_bits(np.array([0, 5, 9, 255]), probs) == pytest.approx(32)


def test_the_range_coder_reads_a_table_in_any_memory_order():
    """constriction misreads a table that is not C-ordered (np.ldexp of a broadcast row gives a
    Fortran-ordered one): the coder hands it over in C order, so both code the same bytes and
    decode back."""
    r = np.random.default_rng(0)
    counts = np.array([200, 4500, 210, 190, 660])
    symbols = r.choice(5, 5760, p=counts / counts.sum())
    rows = np.broadcast_to(counts / counts.sum(), (len(symbols), 5))
    streams = []
    for table in (np.ascontiguousarray(rows), np.asfortranarray(rows), rows):
        enc = RangeCoder().encoder()
        enc.encode(symbols, table)
        streams.append(enc.finish())
        np.testing.assert_array_equal(RangeCoder().decoder(streams[-1]).decode(table), symbols)
    assert streams[0] == streams[1] == streams[2]
    assert len(streams[0]) < RangeCoder().ideal_bits(symbols, rows) / 8 + 8


DECODE_SCRIPT = """
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from igc import get_compressor
comp = get_compressor("imagegpt", model=sys.argv[2])
if sys.argv[3] == "encode":
    image = np.random.default_rng(5).integers(0, 256, (23, 19, 3), dtype=np.uint8)
    open(sys.argv[4], "wb").write(comp.compress(image))
else:
    out = comp.decompress(open(sys.argv[4], "rb").read())
    expected = np.random.default_rng(5).integers(0, 256, (23, 19, 3), dtype=np.uint8)
    assert (out == expected).all()
    print("ok")
"""


@pytest.mark.slow
def test_encode_one_thread_decode_two_threads(tiny_model, tmp_path):
    path = tmp_path / "x.igc"
    subprocess.run([sys.executable, "-c", DECODE_SCRIPT, "1", tiny_model, "encode", str(path)],
                   check=True)
    out = subprocess.run([sys.executable, "-c", DECODE_SCRIPT, "2", tiny_model, "decode",
                          str(path)], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "ok"


def test_a_coders_stream_error_is_refused_in_the_checksums_words():
    """A decoder that finds its stream inconsistent raises StreamError (igc's range coder does;
    a coder plugin may): the decoding loop words it as the checksum's refusal. Other format
    errors pass through as they are."""
    from igc.codec.checks import CAUSE, stream_checked
    from igc.errors import ChecksumError, FormatError, StreamError

    with pytest.raises(ChecksumError, match="no symbol fits") as info, stream_checked():
        raise StreamError("no symbol fits")
    assert str(info.value).endswith(CAUSE)
    with pytest.raises(FormatError, match=r"^payload too short$") as info, stream_checked():
        raise FormatError("payload too short")
    assert not isinstance(info.value, ChecksumError)


def test_the_range_decoder_raises_a_stream_error_when_constriction_refuses():
    """What constriction raises on an inconsistent stream (any exception) leaves igc's range
    decoder as StreamError, so the loop words it as the checksum's refusal."""
    from igc.errors import StreamError

    class Refusing:
        def decode(self, family, probs):
            raise ValueError("invalid compressed data")

    dec = RangeCoder().decoder(b"\0" * 8)
    dec._decoder = Refusing()
    with pytest.raises(StreamError, match="range decoder failed: invalid compressed data"):
        dec.decode(np.full((1, 4), 0.25))
