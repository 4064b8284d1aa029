import numpy as np
import pytest

from igc.core.tokenizer import SubpixelTokenizer, tile_side_for_context
from igc.errors import UsageError

SIZES = [(1, 1), (1, 9), (9, 1), (4, 4), (7, 13), (16, 16), (5, 8)]


@pytest.mark.parametrize("order", ["interleaved", "channel"])
@pytest.mark.parametrize("size", SIZES)
def test_round_trip_and_padding_is_free(order, size, rng):
    h, w = size
    tk = SubpixelTokenizer(4, order)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    tok = tk.encode(image)
    assert tok.tokens.shape == (-(-h // 4) * -(-w // 4), 48)
    # exactly one coded position per subpixel: padding costs nothing
    assert tok.n_coded == h * w * 3
    # every padded position copies an earlier coded position of the same tile
    tiles, pos = np.nonzero(~tok.coded)
    src = tok.pad_source[tiles, pos]
    assert (src < pos).all() and tok.coded[tiles, src].all()
    assert (tok.tokens[tiles, pos] == tok.tokens[tiles, src]).all()
    np.testing.assert_array_equal(tk.decode(tok.tokens, h, w), image)
    layout = tk.layout(h, w)
    np.testing.assert_array_equal(layout.coded, tok.coded)
    np.testing.assert_array_equal(layout.pad_source, tok.pad_source)


def test_interleaved_order_is_rgb_raster():
    image = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    tok = SubpixelTokenizer(2).encode(image)
    assert tok.tokens[0].tolist() == list(range(12))


def test_channel_major_order():
    image = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    tok = SubpixelTokenizer(2, "channel").encode(image)
    assert tok.tokens[0].tolist() == [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]


def test_tile_side_from_context():
    assert tile_side_for_context(768) == 16
    assert tile_side_for_context(1024) == 18  # 18*18*3 = 972 <= 1024
    assert tile_side_for_context(48) == 4
    with pytest.raises(UsageError):
        tile_side_for_context(2)


def test_unknown_order():
    with pytest.raises(UsageError, match="unknown token order"):
        SubpixelTokenizer(4, "zigzag")
