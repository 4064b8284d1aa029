"""Exact values on top of a lossy tokenizer: an adaptive integer model of each subpixel's residual.

A lossy tokenizer (the palette's nearest-cluster indices) decodes to an approximation of the
image. The codec makes it lossless by coding, after all tokens and in the same stream, every
subpixel's exact value given the approximation (spec: docs/palette.md). The model never sees the
residuals; they are coded in raster order over the whole image, where every neighbour's exact value
and every pixel's approximation are known to the decoder.

The model is deliberately integer-only: counts are integers, and a distribution is
`counts / total` in float64, which both sides compute identically (IEEE division), so the coder
sees identical probabilities on any machine.
"""

from __future__ import annotations

import numpy as np

from igc.core.types import Image
from igc.errors import FormatError

SYMBOLS = 511  # value − prediction ∈ −255..255
OFFSET = 255
RADIUS = 8  # the spatial prediction is clamped to centre ± RADIUS: the index says "near the centre"
INCREMENT = 64  # added to a count after each use (fast adaptation on small images)
LIMIT = 1 << 16  # total above which a table's counts are halved (keeps recent statistics)
DIST_EDGES = (1, 3, 6, 11, 21)  # buckets of |spatial prediction − centre|: how far they disagree
ERR_EDGES = (1, 3, 8)  # buckets of the previous channel's |error| in the same pixel


def _bucket_table(edges: tuple[int, ...], size: int = 512) -> list[int]:
    return np.searchsorted(np.asarray(edges), np.arange(size), side="right").tolist()


_DIST = _bucket_table(DIST_EDGES)
_ERR = _bucket_table(ERR_EDGES)
N_CONTEXTS = 3 * (len(DIST_EDGES) + 1) * (len(ERR_EDGES) + 1)


def _prior() -> np.ndarray:
    """Initial counts: peaked at error 0, never zero, so any value stays codable."""
    e = np.abs(np.arange(SYMBOLS) - OFFSET)
    return np.maximum(1, 64 - 4 * e).astype(np.int64)


class ResidualModel:
    """Adaptive model of each subpixel's exact value given its cluster's centre colour.

    Per subpixel (raster order, R, G, B): a spatial prediction s (median edge detector over the
    already-coded left, upper and upper-left values; left or upper alone on the first row/column;
    the centre colour for the first pixel), for G and B corrected by the previous channel's error
    in the same pixel (colour errors are correlated), clamped to centre ± RADIUS. The symbol is
    value − prediction; its frequency table is chosen by channel, by how far s is from the centre
    and by the previous channel's error. Counts update after every symbol on both sides.
    """

    def __init__(self) -> None:
        self.counts = np.tile(_prior(), (N_CONTEXTS, 1))
        self.totals = self.counts.sum(1).tolist()

    def _update(self, k: int, sym: int) -> None:
        row = self.counts[k]
        row[sym] += INCREMENT
        self.totals[k] += INCREMENT
        if self.totals[k] > LIMIT:
            row += 1
            row >>= 1
            self.totals[k] = int(row.sum())

    def walk(self, base: np.ndarray, value_of):
        """Visit every subpixel in coding order; `value_of(y, x, ch, probs, p)` returns its value.

        Shared by encoder and decoder so they cannot drift apart: the decoder's `value_of`
        decodes a symbol, the encoder's returns the known value (and codes it).
        """
        height, width = base.shape[:2]
        base_rows = base.astype(np.int64).tolist()
        out = [[[0, 0, 0] for _ in range(width)] for _ in range(height)]
        counts, totals = self.counts, self.totals
        nd, ne = len(DIST_EDGES) + 1, len(ERR_EDGES) + 1
        for y in range(height):
            row, up = out[y], out[y - 1] if y else None
            brow = base_rows[y]
            for x in range(width):
                b = brow[x]
                cur = row[x]
                err = 0
                for ch in range(3):
                    bc = b[ch]
                    if x and y:
                        left, upper, ul = row[x - 1][ch], up[x][ch], up[x - 1][ch]
                        lo, hi = (left, upper) if left < upper else (upper, left)
                        s = lo if ul >= hi else hi if ul <= lo else left + upper - ul
                    elif x:
                        s = row[x - 1][ch]
                    elif y:
                        s = up[x][ch]
                    else:
                        s = bc
                    k = (ch * nd + _DIST[abs(s - bc)]) * ne + (_ERR[min(abs(err), 511)] if ch
                                                                else 0)
                    p = min(max(s + err, bc - RADIUS, 0), bc + RADIUS, 255)
                    v = value_of(y, x, ch, counts[k] / totals[k], p)
                    cur[ch] = v
                    self._update(k, v - p + OFFSET)
                    err = v - s
        return out


def encode(image: Image, base: np.ndarray, encoder, coder) -> float:
    """Code `image` given per-pixel centre colours `base` into `encoder`; returns the ideal bits."""
    model = ResidualModel()
    pixels = image.astype(np.int64).tolist()
    symbols: list[int] = []
    rows: list[np.ndarray] = []
    bits = 0.0

    def flush() -> None:
        if symbols:
            sym = np.asarray(symbols, dtype=np.int64)
            probs = np.stack(rows)
            encoder.encode(sym, probs)
            nonlocal bits
            bits += coder.ideal_bits(sym, probs)
            symbols.clear()
            rows.clear()

    def value_of(y: int, x: int, ch: int, probs: np.ndarray, p: int) -> int:
        v = pixels[y][x][ch]
        symbols.append(v - p + OFFSET)
        rows.append(probs)
        if len(symbols) >= 4096:
            flush()
        return v

    model.walk(base, value_of)
    flush()
    return bits


def decode(base: np.ndarray, decoder) -> Image:
    """The exact image, given the centre colours `base`, read from `decoder`."""
    model = ResidualModel()

    def value_of(y: int, x: int, ch: int, probs: np.ndarray, p: int) -> int:
        v = int(decoder.decode(probs[None])[0]) - OFFSET + p
        if not 0 <= v <= 255:
            raise FormatError("decoded subpixel value outside 0..255: the file is corrupted")
        return v

    return np.asarray(model.walk(base, value_of), dtype=np.uint8)


class _NullEncoder:
    """Swallows symbols: lets the residual model report its ideal bits without a stream."""

    def encode(self, symbols, probs) -> None:
        pass


def ideal_bits(image: Image, base: np.ndarray, coder) -> float:
    """The bits `encode` would spend, without writing a stream (for estimates)."""
    return encode(image, base, _NullEncoder(), coder)
