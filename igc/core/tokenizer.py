"""Subpixel tokenization: the spec in docs/design.md.

Every subpixel value 0..255 is one token. An image is cut into T×T tiles (T derived from the model's
context: T = floor(sqrt(context / 3))), each tile read in raster order with R, G, B interleaved
(or, as an option, channel-major: all R, then G, then B). Edge tiles are laid out as full T×T tiles
whose extra positions copy the nearest real pixel of the same tile; those copies are known to the
decoder, so they cost no bits and the model always sees the 2-D geometry it was trained on.
"""

from __future__ import annotations

import math

import numpy as np

from igc.core.types import Image, TokenizedImage
from igc.errors import FormatError, UsageError

ORDERS = ("interleaved", "channel")


def tile_side_for_context(context: int, channels: int = 3) -> int:
    """Largest square tile whose subpixels fit the model's context."""
    side = math.isqrt(context // channels)
    if side < 1:
        raise UsageError(f"a context of {context} tokens cannot hold one {channels}-channel pixel")
    return side


def tile_layout(height: int, width: int, tile: int, index: np.ndarray) -> TokenizedImage:
    """The tiles of a height×width image, tokens at zero, with which positions are coded and where
    each padding position copies from.

    `index[r, c, ch]` is the sequence position of subpixel (r, c, ch) of a tile (one channel for
    palette tokens). A padding position copies the same channel of the nearest real pixel of its
    tile (clamping row and column), which always comes earlier in the sequence.
    """
    if height < 1 or width < 1:
        raise FormatError(f"image size {height}x{width} has no pixels")
    t, length = tile, index.size
    rows, cols = -(-height // t), -(-width // t)
    # real extent of each tile
    h = np.minimum(t, height - np.arange(rows) * t).repeat(cols)
    w = np.tile(np.minimum(t, width - np.arange(cols) * t), rows)
    r, c, ch = np.meshgrid(np.arange(t), np.arange(t), np.arange(index.shape[2]), indexing="ij")
    coded = np.zeros((rows * cols, length), dtype=bool)
    source = np.full((rows * cols, length), -1, dtype=np.int64)
    for hh, ww in {(int(a), int(b)) for a, b in zip(h, w, strict=True)}:
        sel = (h == hh) & (w == ww)
        inside = (r < hh) & (c < ww)
        src = index[np.minimum(r, hh - 1), np.minimum(c, ww - 1), ch]
        seq_inside = np.zeros(length, dtype=bool)
        seq_inside[index[inside]] = True
        seq_source = np.full(length, -1, dtype=np.int64)
        seq_source[index[~inside]] = src[~inside]
        coded[sel] = seq_inside
        source[sel] = seq_source
    return TokenizedImage(np.zeros((rows * cols, length), dtype=np.int64), coded, source, height,
                          width, t)


class SubpixelTokenizer:
    """Subpixel tokens 0..255 with start token 256, tiled to fit the model.

    The tile side is `tile`, or else the largest whose subpixels fit `model.context_length`.
    """

    name = "subpixel"
    description = "subpixel values 0..255, RGB interleaved in raster order, start token 256"
    vocab_size = 256
    start_token = 256
    lossless = True

    def __init__(self, tile: int | None = None, order: str = "interleaved", model=None) -> None:
        if tile is None:
            tile = tile_side_for_context(model.context_length) if model is not None else 16
        if order not in ORDERS:
            raise UsageError(f"unknown token order {order!r}; choose one of {', '.join(ORDERS)}")
        if tile < 1:
            raise UsageError(f"tile side must be at least 1, got {tile}")
        self.tile = tile
        self.order = order
        self.length = tile * tile * 3
        # position in the sequence of (row, col, channel) inside a tile
        r, c, ch = np.meshgrid(np.arange(tile), np.arange(tile), np.arange(3), indexing="ij")
        if order == "interleaved":
            self._index = (r * tile + c) * 3 + ch
        else:
            self._index = ch * tile * tile + r * tile + c

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return -(-height // self.tile), -(-width // self.tile)

    def layout(self, height: int, width: int) -> TokenizedImage:
        return tile_layout(height, width, self.tile, self._index)

    def encode(self, image: Image) -> TokenizedImage:
        height, width = image.shape[:2]
        out = self.layout(height, width)
        t = self.tile
        rows, cols = self.grid(height, width)
        padded = np.pad(image, ((0, rows * t - height), (0, cols * t - width), (0, 0)), mode="edge")
        tiles = padded.reshape(rows, t, cols, t, 3).transpose(0, 2, 1, 3, 4).reshape(-1, t, t, 3)
        out.tokens[:, self._index.reshape(-1)] = tiles.reshape(len(tiles), -1).astype(np.int64)
        return out

    def decode(self, tokens: np.ndarray, height: int, width: int) -> Image:
        t = self.tile
        rows, cols = self.grid(height, width)
        if tokens.shape != (rows * cols, self.length):
            raise FormatError(
                f"expected {rows * cols} tiles of {self.length} tokens, got {tokens.shape}"
            )
        if tokens.min() < 0 or tokens.max() > 255:
            raise FormatError("decoded tokens outside 0..255")
        tiles = tokens[:, self._index.reshape(-1)].reshape(rows, cols, t, t, 3)
        image = tiles.transpose(0, 2, 1, 3, 4).reshape(rows * t, cols * t, 3)
        return np.ascontiguousarray(image[:height, :width].astype(np.uint8))

