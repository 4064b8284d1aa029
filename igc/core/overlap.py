"""Windows that overlap their upper and left neighbours by one pixel (context mode 2).

A tile coded alone spends its first row and column without the neighbours a classical codec
predicts from: on Kodak those 31 of 256 pixels cost 15-23% more than the rest. Here the image is
cut into T×T windows whose origins are T−1 pixels apart, so each window's first row is the last
row of the window above it and its first column the last column of the window to its left. Those
pixels are decoded before the window starts; they are fed to the model as context (its keys and
values see them) but not coded. Every pixel is coded by exactly one window, its *owner*: window
(0, 0) codes all T×T of its pixels, a window of the first row or column T×(T−1), any other
(T−1)×(T−1).

A window needs its upper, left and upper-left neighbours finished, so windows are ordered by
anti-diagonal (i + j, then i): the windows of one anti-diagonal depend only on earlier ones and
step together (`TokenizedImage.groups` holds how many each has). Padding beyond the image copies
the nearest real pixel of the window, as `tile_layout` does for tiles. docs/format.md, "Context
mode 2", is the spec.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from igc.core.tokenizer import tile_layout
from igc.core.types import Image, TokenizedImage
from igc.errors import FormatError, UsageError


def window_grid(height: int, width: int, tile: int) -> tuple[int, int]:
    """(rows, columns) of windows covering a height×width image, origins tile−1 apart."""
    step = tile - 1
    return max(1, -(-(height - 1) // step)), max(1, -(-(width - 1) // step))


def owner(coordinate: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(window index, offset in it) of the window that codes each pixel row (or column)."""
    index = np.maximum(0, (coordinate - 1) // step)
    return index, coordinate - index * step


def overlappable(tokenizer) -> bool:
    """Whether a tokenizer's tiles can be laid out as overlapping windows: subpixel tiles (whose
    position index this module reads) of at least 2 pixels."""
    return (tokenizer.name == "subpixel" and getattr(tokenizer, "_index", None) is not None
            and tokenizer.tile >= 2)


class OverlapTiling:
    """A subpixel tokenizer's tiles, laid out as overlapping windows (see the module docstring).
    Offers what the codec asks of a tokenizer: `layout`, `encode`, `decode`, `grid`."""

    def __init__(self, tokenizer) -> None:
        if not overlappable(tokenizer):
            raise UsageError(f"context modes 2 and 3 overlap subpixel tiles of at least 2 "
                             f"pixels; the {tokenizer.name} tokenizer's {tokenizer.tile}px "
                             "tiles cannot")
        self.base, self.tile, self.length = tokenizer, tokenizer.tile, tokenizer.length
        self.step, self._index = tokenizer.tile - 1, tokenizer._index
        self.name, self.order = tokenizer.name, tokenizer.order
        self.start_token, self.lossless = tokenizer.start_token, True

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return window_grid(height, width, self.tile)

    def _order(self, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Window rows and columns in coding order (anti-diagonals), and each one's size."""
        i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        i, j = i.ravel(), j.ravel()
        order = np.lexsort((i, i + j))
        sizes = np.bincount((i + j)[order]).tolist()
        return i[order], j[order], sizes

    def layout(self, height: int, width: int) -> TokenizedImage:
        """Tokens at zero; `coded`, `pad_source` as for tiles; `context_source[w, t]` the flat
        index (window * L + position) of the owner's position that context position t of window w
        copies, -1 elsewhere."""
        if height < 1 or width < 1:
            raise FormatError(f"image size {height}x{width} has no pixels")
        t, s, index, n_pos = self.tile, self.step, self._index, self.length
        rows, cols = self.grid(height, width)
        wi, wj, sizes = self._order(rows, cols)
        n = len(wi)
        # each window laid out as a tile of its real extent: coded and padding positions
        coded = np.zeros((n, n_pos), dtype=bool)
        pad = np.full((n, n_pos), -1, dtype=np.int64)
        hh, ww = np.minimum(t, height - wi * s), np.minimum(t, width - wj * s)
        for h1, w1 in {(int(a), int(b)) for a, b in zip(hh, ww, strict=True)}:
            one = tile_layout(h1, w1, t, index)
            sel = (hh == h1) & (ww == w1)
            coded[sel], pad[sel] = one.coded[0], one.pad_source[0]
        # context: the first row of a window below the first, the first column right of the first
        r, c, ch = np.meshgrid(np.arange(t), np.arange(t), np.arange(3), indexing="ij")
        seq = index.reshape(-1)
        r, c, ch = r.reshape(-1), c.reshape(-1), ch.reshape(-1)
        position_of = np.empty((rows, cols), dtype=np.int64)
        position_of[wi, wj] = np.arange(n)
        context = np.full((n, n_pos), -1, dtype=np.int64)
        for w in np.flatnonzero((wi > 0) | (wj > 0)):
            at = ((r == 0) & (wi[w] > 0)) | ((c == 0) & (wj[w] > 0))
            at &= (r < hh[w]) & (c < ww[w])
            oi, orow = owner(wi[w] * s + r[at], s)
            oj, ocol = owner(wj[w] * s + c[at], s)
            context[w, seq[at]] = position_of[oi, oj] * n_pos + index[orow, ocol, ch[at]]
            coded[w, seq[at]] = False
        return TokenizedImage(np.zeros((n, n_pos), dtype=np.int64), coded, pad, height, width, t,
                              context_source=context, groups=tuple(sizes))

    def pixels(self, height: int, width: int, coded: np.ndarray) -> np.ndarray:
        """(L, windows) int32, by step: the flat index ((y * width + x) * 3 + channel) of the
        subpixel each window codes at each position, -1 where `coded` (the layout's) is False:
        context and padding (what context mode 3's predictor reads its neighbours by; below
        2**31, as images have at most 2**28 pixels)."""
        rows, cols = self.grid(height, width)
        wi, wj = self._order(rows, cols)[:2]
        r, c, ch = np.meshgrid(np.arange(self.tile), np.arange(self.tile), np.arange(3),
                               indexing="ij")
        offset = np.empty(self.length, dtype=np.int64)
        offset[self._index.reshape(-1)] = ((r * width + c) * 3 + ch).ravel()
        origin = (wi * self.step * width + wj * self.step) * 3
        out = np.full((self.length, len(wi)), -1, dtype=np.int32)
        for t in range(self.length):  # one position at a time: no (L, windows) int64 temporary
            at = coded[:, t]
            out[t, at] = origin[at] + offset[t]
        return out

    def _padded(self, image: np.ndarray, rows: int, cols: int) -> np.ndarray:
        h, w = image.shape[:2]
        full_h, full_w = (rows - 1) * self.step + self.tile, (cols - 1) * self.step + self.tile
        return np.pad(image, ((0, full_h - h), (0, full_w - w), (0, 0)), mode="edge")

    def encode(self, image: Image) -> TokenizedImage:
        height, width = image.shape[:2]
        out = self.layout(height, width)
        t, s = self.tile, self.step
        rows, cols = self.grid(height, width)
        wi, wj = self._order(rows, cols)[:2]
        views = sliding_window_view(self._padded(image, rows, cols), (t, t, 3))[::s, ::s, 0]
        windows = views[wi, wj]  # (n, t, t, 3)
        out.tokens[:, self._index.reshape(-1)] = windows.reshape(len(wi), -1).astype(np.int64)
        return out

    def decode(self, tokens: np.ndarray, height: int, width: int) -> Image:
        """The pixels: each window's tokens at its place (overlaps hold equal values, and the
        decoder checks the result against the header's checksum)."""
        t, s = self.tile, self.step
        rows, cols = self.grid(height, width)
        if tokens.shape != (rows * cols, self.length):
            raise FormatError(f"expected {rows * cols} windows of {self.length} tokens, got "
                              f"{tokens.shape}")
        if tokens.min() < 0 or tokens.max() > 255:
            raise FormatError("decoded tokens outside 0..255")
        wi, wj = self._order(rows, cols)[:2]
        windows = tokens[:, self._index.reshape(-1)].reshape(-1, t, t, 3).astype(np.uint8)
        image = np.zeros(((rows - 1) * s + t, (cols - 1) * s + t, 3), dtype=np.uint8)
        for w in range(len(wi)):
            image[wi[w] * s: wi[w] * s + t, wj[w] * s: wj[w] * s + t] = windows[w]
        return np.ascontiguousarray(image[:height, :width])
