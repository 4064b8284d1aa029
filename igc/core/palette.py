"""Palette tokenization, the input OpenAI's ImageGPT checkpoints were trained on (spec: docs/palette.md).

Those checkpoints see one token per pixel: the index of the nearest of 512 colour clusters (k-means
centres in [-1, 1]³, shipped as `clusters` in the checkpoint's `preprocessor_config.json`), with
pixels normalised as x / 127.5 − 1 and a start token 512 prepended by the caller. Tiles are T×T
pixels with T = floor(sqrt(context)) (1024 → 32), read in raster order; edge tiles are padded with
copies of earlier positions, exactly like the subpixel tokenizer, so padding costs no bits.

Quantizing is lossy: `decode` maps indices back to the rounded centre colours. The lossless mode
adds each pixel's exact value on top of its centre (igc/codec/residual.py).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from igc.core.tokenizer import tile_layout
from igc.core.types import Image, TokenizedImage
from igc.errors import FormatError, ModelError, UsageError

PREPROCESSOR_CONFIG = "preprocessor_config.json"
CHUNK = 8192  # pixels per distance matrix (CHUNK × clusters float64 values)


def load_clusters(folder: str | Path) -> np.ndarray:
    """The (K, 3) float32 cluster centres from a checkpoint folder's preprocessor_config.json."""
    path = Path(folder) / PREPROCESSOR_CONFIG
    if not path.is_file():
        raise ModelError(f"palette model {folder} has no {PREPROCESSOR_CONFIG} with its colour "
                         "clusters; a 513-token ImageGPT cannot code images without them")
    from igc.core.files import read_json

    data = read_json(path, ModelError)
    try:
        clusters = np.asarray(data.get("clusters"), dtype=np.float32)
    except (AttributeError, ValueError, TypeError) as exc:
        raise ModelError(f"cannot read clusters from {path}: {exc}") from None
    if clusters.ndim != 2 or clusters.shape[1] != 3 or len(clusters) < 2:
        raise ModelError(f"{path}: 'clusters' must be a list of [r, g, b] centres, got shape "
                         f"{clusters.shape}")
    if not np.isfinite(clusters).all():
        raise ModelError(f"{path}: 'clusters' holds non-finite values")
    return clusters


def clusters_fingerprint(clusters: np.ndarray) -> str:
    """Hex digest of the centres as float32: two palettes code alike only if this matches."""
    return hashlib.sha256(np.ascontiguousarray(clusters, dtype="<f4").tobytes()).hexdigest()[:16]


def combined_fingerprint(model_fingerprint: str, tokenizer_fingerprint: str | None) -> str:
    """A file's fingerprint: the model's, combined with its tokenizer's when that has data of its
    own (a palette's clusters), so that a file refuses another palette too."""
    if not tokenizer_fingerprint:
        return model_fingerprint
    return hashlib.sha256(f"{model_fingerprint}:{tokenizer_fingerprint}".encode()).hexdigest()[:16]


def centre_colours(clusters: np.ndarray) -> np.ndarray:
    """(K, 3) uint8: each centre mapped back to 8-bit colour, (c + 1) * 127.5 rounded and clipped."""
    return np.clip(np.rint((clusters.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def quantize(pixels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for every pixel (any leading shape, last axis RGB).

    Pixels are normalised as x / 127.5 − 1 (what HuggingFace's processor computes as
    (x / 255 − 0.5) / 0.5). Distances are evaluated in float64 so that the choice is the true
    nearest centre up to ties far below float32 resolution; only the encoder quantizes, so this
    need not be reproducible across machines.
    """
    flat = pixels.reshape(-1, 3)
    c = clusters.astype(np.float64)
    c2 = (c * c).sum(1)
    # 256³ colours at most: quantize each distinct colour once
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    x = colours.astype(np.float64) / 127.5 - 1.0
    out = np.empty(len(x), dtype=np.int64)
    for i in range(0, len(x), CHUNK):
        part = x[i : i + CHUNK]
        out[i : i + CHUNK] = np.argmin(c2[None, :] - 2.0 * part @ c.T, axis=1)
    return out[inverse.reshape(-1)].reshape(pixels.shape[:-1])


def tile_side_for_palette(context: int) -> int:
    """One token per pixel: the largest square tile that fits the context (1024 → 32)."""
    side = math.isqrt(context)
    if side < 1:
        raise UsageError(f"a context of {context} tokens cannot hold one pixel")
    return side


class PaletteTokenizer:
    """Nearest-cluster indices 0..K−1 with start token K, one token per pixel, raster order.

    Built for a model (`model=`), it takes the model's clusters (`model.clusters`, a palette
    ImageGPT's preprocessor_config.json) and the largest tile its context holds.
    """

    name = "palette"
    description = "index of the nearest colour cluster per pixel (OpenAI ImageGPT), start token K"
    lossless = False  # decodes to the centre colours; the codec may add exact residuals
    order = "interleaved"
    batch = 16  # tiles stepped together: 1024-token caches of imagegpt-small, 16 tiles ≈ 1.6 GB

    def __init__(self, clusters: np.ndarray | None = None, tile: int | None = None, model=None,
                 order: str = "interleaved") -> None:
        if order != "interleaved":
            raise UsageError("palette models see one token per pixel: --order does not apply")
        if clusters is None:
            clusters = getattr(model, "clusters", None) if model is not None else None
            if clusters is None:
                what = (f"model {model.name!r} predicts {model.vocab_size} classes and has no "
                        "colour clusters" if model is not None else "no clusters were given")
                raise UsageError("the palette tokenizer needs a palette model, one with colour "
                                 "clusters (a palette ImageGPT such as openai/imagegpt-small: 512 "
                                 f"clusters in preprocessor_config.json): {what}")
        if tile is None:
            tile = tile_side_for_palette(model.context_length) if model is not None else 32
        if tile < 1:
            raise UsageError(f"tile side must be at least 1, got {tile}")
        if model is not None and len(clusters) != model.vocab_size:
            raise UsageError(f"model {model.name!r} predicts {model.vocab_size} classes but its "
                             f"palette has {len(clusters)} clusters")
        self.clusters = np.asarray(clusters, dtype=np.float32)
        self.fingerprint = clusters_fingerprint(self.clusters)
        self.colours = centre_colours(self.clusters)
        self.vocab_size = len(self.clusters)
        self.start_token = self.vocab_size
        self.tile = tile
        self.length = tile * tile
        self._index = np.arange(self.length).reshape(tile, tile, 1)  # raster order

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return -(-height // self.tile), -(-width // self.tile)

    def layout(self, height: int, width: int) -> TokenizedImage:
        """Tiles of this image with tokens at zero; padding copies the nearest real pixel of the
        tile (see igc.core.tokenizer.tile_layout)."""
        return tile_layout(height, width, self.tile, self._index)

    def tiles_of(self, grid: np.ndarray, height: int, width: int) -> np.ndarray:
        """(H, W) per-pixel values -> (tiles, T*T) sequences, edges padded by replication."""
        t = self.tile
        rows, cols = self.grid(height, width)
        padded = np.pad(grid, ((0, rows * t - height), (0, cols * t - width)), mode="edge")
        return padded.reshape(rows, t, cols, t).transpose(0, 2, 1, 3).reshape(rows * cols, -1)

    def untile(self, tokens: np.ndarray, height: int, width: int) -> np.ndarray:
        """(tiles, T*T) sequences -> (H, W) per-pixel values."""
        t = self.tile
        rows, cols = self.grid(height, width)
        if tokens.shape != (rows * cols, self.length):
            raise FormatError(f"expected {rows * cols} tiles of {self.length} tokens, got "
                              f"{tokens.shape}")
        grid = tokens.reshape(rows, cols, t, t).transpose(0, 2, 1, 3).reshape(rows * t, cols * t)
        return grid[:height, :width]

    def encode(self, image: Image) -> TokenizedImage:
        height, width = image.shape[:2]
        out = self.layout(height, width)
        out.tokens[:] = self.tiles_of(quantize(image, self.clusters), height, width)
        return out

    def indices(self, tokens: np.ndarray, height: int, width: int) -> np.ndarray:
        grid = self.untile(tokens, height, width)
        if grid.min() < 0 or grid.max() >= self.vocab_size:
            raise FormatError(f"decoded palette indices outside 0..{self.vocab_size - 1}")
        return np.ascontiguousarray(grid)

    def decode(self, tokens: np.ndarray, height: int, width: int) -> Image:
        """Indices -> the centre colours (the lossy palette image)."""
        return self.colours[self.indices(tokens, height, width)]


def psnr(a: Image, b: Image) -> float:
    """Peak signal-to-noise ratio in dB over all subpixels (inf for identical images)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


PAPER_SIZE = 32


def resize_to_paper(image: Image) -> Image:
    """The ImageGPT paper's input: the whole image resized to 32×32 (PIL bilinear, as the
    HuggingFace processor's default resampling). Lossy by construction, so only on request."""
    from PIL import Image as PILImage

    if image.shape[:2] == (PAPER_SIZE, PAPER_SIZE):
        return image
    resized = PILImage.fromarray(image).resize((PAPER_SIZE, PAPER_SIZE), PILImage.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)
