"""The packaged default: one model for whole photographs, another for everything smaller.

No one shipped model is best everywhere: the pixel model (one position per pixel) codes a whole
photograph as well as the subpixel default in well under half its time, but spends more the
smaller the image: 1.4% more on 256×256 crops of photographs (igc-rgb16-pixel-v2), 3.1% more on
CIFAR-10's 32×32 images (igc-rgb16-pixel; docs/results.md). When no model is named, `imagegpt` therefore codes images of at least
PHOTO_MIN_PIXELS (a Kodak photo's 768×512, where the two were measured even) with PHOTO_MODEL,
everything else with DEFAULT_MODEL. Each file names its own model, so decoding needs nothing from
here; naming a model (`--model`, `-c imagegpt:ID`) always means that model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from igc.codec.neural import EncodeResult, NeuralCodec, Progress
from igc.compressors.model_based import ModelCompressor
from igc.core import container
from igc.core.types import Image
from igc.errors import UsageError

# the smallest image the default codes with its photo model: Kodak's 768×512, where the pixel
# model spent 0.07% fewer bits than the subpixel default (24 photos); on 256×256 crops it spent
# 1.36% more (docs/design.md, "The default: a model per image size")
PHOTO_MIN_PIXELS = 768 * 512


def whole_photograph(height: int, width: int) -> bool:
    """Whether the default codes an image of this size with its photo model."""
    return height * width >= PHOTO_MIN_PIXELS


class PhotoSplitCompressor:
    """`small` on images smaller than a whole photograph, and on whole photographs the
    compressor `photo()` makes (once, when first needed). Where the options given cannot code
    with the photo model (`UsageError`, e.g. an order it does not read), every image goes to
    `small`: the options pin the model the user asked for with them."""

    model_based = True

    def __init__(self, small: ModelCompressor, photo: Callable[[], ModelCompressor]) -> None:
        self.small, self._make_photo = small, photo
        self._photo: ModelCompressor | None = None
        self._photo_refused = False
        self.name, self.lossless = small.name, small.lossless

    def _photo_compressor(self) -> ModelCompressor | None:
        if self._photo is None and not self._photo_refused:
            try:
                self._photo = self._make_photo()
            except UsageError:
                self._photo_refused = True
        return self._photo

    def codec_for(self, image: Image) -> NeuralCodec:
        """The codec that codes `image`: the photo model's for a whole photograph."""
        return self._for(image).codec

    def _for(self, image: Image) -> ModelCompressor:
        shape = getattr(image, "shape", ())
        if len(shape) >= 2 and whole_photograph(*shape[:2]):
            return self._photo_compressor() or self.small
        return self.small  # smaller images, and anything the codec will check and refuse

    @property
    def codec(self) -> NeuralCodec:
        """The small images' codec (what a caller that asks for one codec gets)."""
        return self.small.codec

    @property
    def model(self) -> Any:
        return self.small.model

    @property
    def model_info(self) -> dict:
        """The small images' model's description, with the photo model's under `photo_model`
        and a fingerprint of the pair, so that a bench log's rows made by the pair are not
        taken for rows of either model alone."""
        info = dict(self.small.model_info)
        photo = self._photo_compressor()
        if photo is None:
            return info
        info["photo_model"] = photo.model_info
        pair = f"{self.small.model.fingerprint}+{photo.model.fingerprint}"
        info["fingerprint"] = hashlib.sha256(pair.encode()).hexdigest()[:16]
        info["model"] = f"{self.small.model.name} (photographs: {photo.model.name})"
        info["parameters"] = None  # two models: each one's count is under its own description
        return info

    def compress(self, image: Image) -> bytes:
        return self._for(image).compress(image)

    def compress_with_stats(self, image: Image, progress: Progress | None = None
                            ) -> EncodeResult:
        return self._for(image).compress_with_stats(image, progress)

    def estimate_bits(self, image: Image) -> float:
        return self._for(image).estimate_bits(image)

    def decompress(self, data: bytes, progress: Progress | None = None) -> Image:
        """Decode with whichever of the two models the file names (the small one refuses, in
        one line, a file of any other model, as a single-model compressor does)."""
        header, _ = container.read_header(data)
        photo = self._photo
        if photo is None and header.fingerprint != self.small.model.fingerprint:
            photo = self._photo_compressor()
        if photo is not None and header.fingerprint == photo.model.fingerprint:
            return photo.decompress(data, progress)
        return self.small.decompress(data, progress)
