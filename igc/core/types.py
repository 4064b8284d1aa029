"""Data types shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]  # (H, W, 3), RGB


@dataclass(frozen=True)
class Geometry:
    """Where a tile's tokens lie in the image: what the codec tells a model's `start` as
    `geometry=` (when `start` takes that keyword), so a model that looks at neighbours need not
    guess the tile side or the token order from its context length.

    Token t of a tile (t = 0 is the first token after the start token) is pixel
    `(row, column)` of the tile, channel `channel`, as `position(t)` gives them: in "interleaved"
    order t runs over R, G, B of pixel 0, then of pixel 1, ..., pixels in raster order; in
    "channel" order over every pixel's R, then every G, then every B. Palette tokens have one
    channel.
    """

    tile: int  # tile side in pixels
    order: str  # "interleaved" or "channel"
    tokens: int  # tokens per tile, start token excluded (tile * tile * channels)
    tokenizer: str  # the registered tokenizer's name ("subpixel", "palette", ...)

    @property
    def channels(self) -> int:
        return max(1, self.tokens // (self.tile * self.tile))

    def position(self, t: int) -> tuple[int, int, int]:
        """(row, column, channel) within the tile of token t."""
        if self.order == "channel":
            channel, pixel = divmod(t, self.tile * self.tile)
        else:
            pixel, channel = divmod(t, self.channels)
        return pixel // self.tile, pixel % self.tile, channel


@dataclass
class TokenizedImage:
    """An image as a batch of equal-length token sequences, one per tile.

    tokens[i, t] is the t-th symbol of tile i (no start token). `coded[i, t]` is False where the
    position is padding: its value is a copy of `tokens[i, pad_source[i, t]]`, an earlier position
    of the same tile, so a decoder can fill it without reading bits.
    """

    tokens: npt.NDArray[np.int64]  # (tiles, L)
    coded: npt.NDArray[np.bool_]  # (tiles, L)
    pad_source: npt.NDArray[np.int64]  # (tiles, L), -1 where coded
    height: int
    width: int
    tile: int  # tile side in pixels
    # context mode 2 (igc.core.overlap): where each context position copies from (a flat index
    # into tokens, decoded before its window starts; -1 elsewhere), and the sizes of the runs of
    # windows that may step together, in order. None for tiles coded alone.
    context_source: npt.NDArray[np.int64] | None = None
    groups: tuple[int, ...] | None = None

    @property
    def n_coded(self) -> int:
        return int(self.coded.sum())


@dataclass
class LoadedImage:
    """A bench input: RGB pixels plus a note of what conversion produced them."""

    name: str
    pixels: Image
    note: str = ""  # e.g. "RGBA: alpha dropped"; empty when the source already was 8-bit RGB
    source: str = ""
    meta: dict = field(default_factory=dict)
