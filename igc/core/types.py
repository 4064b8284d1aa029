"""Data types shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]  # (H, W, 3), RGB


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
