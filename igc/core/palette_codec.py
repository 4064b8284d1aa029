"""Coding with a palette ImageGPT: indices from the model, exact colours from an adaptive residual model.

Two modes (spec: docs/palette.md):

- `palette` (lossy): only the nearest-cluster indices are coded, stepped through the model exactly
  like the subpixel codec does (same batch layout on both sides, so probabilities are
  bit-identical). The file decodes to the centre colours.
- `palette+residual` (lossless): after all indices, every pixel's exact RGB value is coded given
  its cluster's centre colour, with integer frequency tables that encoder and decoder update in
  the same order. The model never sees the residuals, so they are coded after the indices in the
  same range-coder stream, in raster order over the whole image, where every neighbour's exact
  colour and every pixel's centre are known to the decoder.

The residual model is deliberately integer-only: counts are integers, and a distribution is
`counts / total` in float64, which both sides compute identically (IEEE division), so the range
coder sees identical probabilities on any machine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from igc.core import container
from igc.core.codec import (
    MISMATCH_HINT,
    EncodeResult,
    NeuralCodec,
    _region_checks,
    offered,
    pixel_checksum,
)
from igc.core.lanes import numerics_of
from igc.core.palette import (
    PaletteTokenizer,
    clusters_fingerprint,
    tile_side_for_palette,
)
from igc.core.types import Image
from igc.errors import ChecksumError, FormatError, ImageError, ModelMismatchError, UsageError

MODES = {"palette": "palette", "lossless": "palette+residual"}

# -- the residual model ---------------------------------------------------------------------------
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

    def _walk(self, base: np.ndarray, value_of):
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


def _residual_encode(image: Image, base: np.ndarray, encoder, coder) -> float:
    """Code `image` given per-pixel centre colours `base`; returns the ideal bits."""
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

    model._walk(base, value_of)
    flush()
    return bits


def _residual_decode(base: np.ndarray, decoder) -> Image:
    model = ResidualModel()

    def value_of(y: int, x: int, ch: int, probs: np.ndarray, p: int) -> int:
        v = int(decoder.decode(probs[None])[0]) - OFFSET + p
        if not 0 <= v <= 255:
            raise FormatError("decoded subpixel value outside 0..255: the file is corrupted")
        return v

    return np.asarray(model._walk(base, value_of), dtype=np.uint8)


# -- the codec ------------------------------------------------------------------------------------
@dataclass
class PaletteEncodeResult(EncodeResult):
    index_bits: float = 0.0  # -sum log2 p of the palette indices under the model
    residual_bits: float = 0.0  # -sum log2 p of the exact values under the residual model
    mode: str = "palette+residual"
    quantized: Image | None = None  # the centre-colour image (what the lossy mode decodes to)


def palette_fingerprint(model_fingerprint: str, clusters: np.ndarray) -> str:
    """The model's weights and its clusters in one 8-byte id: another palette is refused."""
    text = f"{model_fingerprint}:{clusters_fingerprint(clusters)}".encode()
    return hashlib.sha256(text).hexdigest()[:16]


class PaletteCodec(NeuralCodec):
    """Codes images with a palette (513-token) ImageGPT: lossy indices, or lossless on top."""

    def __init__(self, model, coder, clusters: np.ndarray, mode: str = "lossless",
                 batch: int | None = None) -> None:
        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        super().__init__(model, coder, batch=batch or 256)
        if len(clusters) != model.vocab_size:
            raise UsageError(f"model {model.name!r} predicts {model.vocab_size} classes but its "
                             f"palette has {len(clusters)} clusters")
        self.mode = MODES[mode]
        self.clusters = clusters
        self.tokenizer = PaletteTokenizer(clusters, tile_side_for_palette(model.context_length))
        self.fingerprint = palette_fingerprint(model.fingerprint, clusters)

    @property
    def lossless(self) -> bool:
        return self.mode == "palette+residual"

    def encode(self, image: Image) -> PaletteEncodeResult:
        container.check_pixels(*image.shape[:2], ImageError)
        tok = self.tokenizer.encode(image)
        encoder = self.coder.encoder()
        index_bits = self.encode_tokens(tok, encoder)
        h, w = tok.height, tok.width
        quantized = self.tokenizer.decode(tok.tokens, h, w)
        residual_bits = 0.0
        if self.lossless:
            residual_bits = _residual_encode(image, quantized, encoder, self.coder)
        payload = encoder.finish()
        target = image if self.lossless else quantized
        header = container.Header(
            height=h, width=w, tile=tok.tile, model_id=self.model.name,
            fingerprint=self.fingerprint, checksum=pixel_checksum(target),
            region_checks=_region_checks(tok.tokens), payload_length=len(payload),
            batch=self.batch, lane=self.lane_for(len(tok.tokens)), tokenizer=self.mode,
            coder=self.coder.name, precision=self.coder.precision,
            numerics=numerics_of(self.model))
        data = container.pack(header, payload)
        return PaletteEncodeResult(data, index_bits + residual_bits, len(data) - len(payload),
                                   h * w * 3, index_bits, residual_bits, self.mode, quantized)

    def estimate_bits(self, image: Image) -> float:
        """Index bits from one parallel pass, plus the residual model's ideal bits (exact)."""
        tok = self.tokenizer.encode(image)
        bits = self.one_shot_bits(tok)
        if self.lossless:
            quantized = self.tokenizer.decode(tok.tokens, tok.height, tok.width)
            bits += _residual_encode(image, quantized, _NullEncoder(), self.coder)
        return bits

    def check_model(self, header: container.Header) -> None:
        if header.tokenizer != self.mode:
            raise FormatError(f"file holds {header.tokenizer} tokens; this codec decodes "
                              f"{self.mode}")
        if header.fingerprint != self.fingerprint:
            raise ModelMismatchError(
                f"file was encoded with model {header.model_id!r} and its palette (fingerprint "
                f"{header.fingerprint}) but {offered(self.model, self.fingerprint)} with its "
                f"clusters was given; {MISMATCH_HINT} {header.model_id!r} and the same "
                "preprocessor_config.json")
        self.check_numerics(header)
        if header.tile != self.tokenizer.tile:
            raise FormatError(f"file uses {header.tile}px tiles; model {self.model.name!r} codes "
                              f"{self.tokenizer.tile}px tiles")

    def decode(self, data: bytes) -> Image:
        header, payload = container.unpack(data)
        self.check_model(header)
        decoder = self.coder.decoder(payload)
        tokens = self.decode_tokens(header, decoder)
        image = self.tokenizer.decode(tokens, header.height, header.width)
        if self.lossless:
            image = _residual_decode(image, decoder)
        if pixel_checksum(image) != header.checksum:
            raise ChecksumError("decoded pixels fail the checksum: the file is corrupted or was "
                                "decoded on a machine that computes the model differently")
        return image


class _NullEncoder:
    """Swallows symbols: lets the residual model report its ideal bits without a stream."""

    def encode(self, symbols, probs) -> None:
        pass


# -- choosing the codec for a model ---------------------------------------------------------------
TOKENIZER_CHOICES = ("subpixel", "palette")
PALETTE_BATCH = 16  # 1024-token key/value caches are large: 16 tiles of imagegpt-small ≈ 1.6 GB


def make_codec(model, coder, *, mode: str | None = None, tokenizer: str | None = None,
               order: str = "interleaved", batch: int | None = None):
    """The codec a model calls for: its vocabulary decides (257 → subpixel, 513 with clusters →
    palette), or `tokenizer` forces one, which must then fit the model."""
    from igc.core.codec import DEFAULT_BATCH
    from igc.core.palette import load_clusters

    kind = getattr(model, "tokenizer_kind", "subpixel")
    if tokenizer is not None:
        if tokenizer not in TOKENIZER_CHOICES:
            raise UsageError(f"unknown tokenizer {tokenizer!r}; choose one of "
                             f"{', '.join(TOKENIZER_CHOICES)}")
        if tokenizer != kind:
            raise UsageError(f"model {model.name!r} has a {kind} vocabulary "
                             f"({model.vocab_size + 1} tokens); the {tokenizer} tokenizer needs "
                             f"{'513 tokens and colour clusters' if tokenizer == 'palette' else '257 tokens'}")
    if mode is not None and mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if kind == "palette":
        if order != "interleaved":
            raise UsageError("palette models see one token per pixel: --order does not apply")
        clusters = load_clusters(model.folder)
        return PaletteCodec(model, coder, clusters, mode or "lossless", batch or PALETTE_BATCH)
    if mode == "palette":
        raise UsageError(f"--mode palette needs a palette ImageGPT (513-token vocabulary with "
                         f"colour clusters, e.g. openai/imagegpt-small); model {model.name!r} "
                         f"codes subpixels, which is always lossless")
    if kind != "subpixel":
        raise UsageError(f"model {model.name!r} has a vocabulary igc cannot tokenize for ({kind})")
    return NeuralCodec(model, coder, order=order, batch=batch or DEFAULT_BATCH)


def report_fields(result: EncodeResult, image: Image) -> dict:
    """Extra bench fields of a palette encode: the bit split, and for the lossy mode its PSNR and
    what PNG and JPEG-XL take for the same quantized image (the fair comparison)."""
    if not isinstance(result, PaletteEncodeResult):
        return {}
    from igc.core.palette import psnr

    out = {"tokenizer": "palette", "mode": result.mode,
           "index_bits": result.index_bits, "residual_bits": result.residual_bits}
    if result.mode == "palette":
        out["psnr"] = psnr(image, result.quantized)
        out["png_bits_quantized"] = _classical_bits("png", result.quantized)
        out["jxl_bits_quantized"] = _classical_bits("jxl", result.quantized)
    return out


def _classical_bits(name: str, image: Image) -> int | None:
    from igc.errors import IgcError
    from igc.plugins.manager import get_registry

    try:
        return len(get_registry().create("compressor", name).compress(image)) * 8
    except IgcError:
        return None
