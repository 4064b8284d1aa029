"""The packaged default codes whole photographs with PHOTO_MODEL and other images with
DEFAULT_MODEL (igc/compressors/photo_split.py): each file names the model that coded it and
decodes exactly, through the same compressor or alone; naming a model, or options the photo model
cannot take, means one model for every image; bench names each row's model. Most tests move the
threshold down (monkeypatch) so that small images exercise both models quickly; the threshold
itself is checked on sizes, without coding."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import smooth_image

import igc
from igc.api import compressor
from igc.codec import context
from igc.compressors import photo_split
from igc.compressors.model_based import ModelCompressor
from igc.compressors.photo_split import PhotoSplitCompressor
from igc.core import container
from igc.models.folders import DEFAULT_MODEL, PHOTO_MODEL
from igc.models.imagegpt import ImageGPTModel


@pytest.fixture
def wide_is_photo(monkeypatch):
    """Images 40 or more pixels wide count as whole photographs (the real threshold: 768×512)."""
    monkeypatch.setattr(photo_split, "whole_photograph", lambda h, w: w >= 40)


def model_of(data: bytes) -> str:
    return container.unpack(data)[0].model_id


def test_the_default_is_split_and_describes_both_models():
    made = compressor()
    assert isinstance(made, PhotoSplitCompressor) and made.name == "imagegpt"
    assert PHOTO_MODEL and PHOTO_MODEL != DEFAULT_MODEL
    info = made.model_info
    assert info["photo_model"]["model"] == PHOTO_MODEL
    small_fp, photo_fp = ImageGPTModel(DEFAULT_MODEL).fingerprint, info["photo_model"]["fingerprint"]
    assert len(info["fingerprint"]) == 16 and info["fingerprint"] not in (small_fp, photo_fp)
    assert DEFAULT_MODEL in info["model"] and PHOTO_MODEL in info["model"]


def test_a_named_model_is_that_model_for_every_image():
    assert isinstance(compressor(DEFAULT_MODEL), ModelCompressor)
    assert isinstance(compressor(PHOTO_MODEL), ModelCompressor)
    made, _ = igc.api.create_compressors([f"imagegpt:{DEFAULT_MODEL}"])
    assert isinstance(made[0], ModelCompressor)


def test_each_image_goes_to_its_model_and_decodes_exactly(wide_is_photo):
    made = compressor()
    small, photo = smooth_image(20, 24, seed=1), smooth_image(20, 44, seed=2)
    small_file, photo_file = made.compress(small), made.compress(photo)
    assert model_of(small_file) == DEFAULT_MODEL and model_of(photo_file) == PHOTO_MODEL
    for data, image in ((small_file, small), (photo_file, photo)):
        np.testing.assert_array_equal(made.decompress(data), image)  # the same compressor
        np.testing.assert_array_equal(igc.decompress(data), image)  # the file alone
    assert made.codec_for(photo).model.name == PHOTO_MODEL
    assert made.codec_for(small).model.name == DEFAULT_MODEL


def test_a_fresh_default_decodes_a_photo_file_first(wide_is_photo):
    """Decoding before any photograph was coded loads the photo model for the file's sake."""
    photo = smooth_image(16, 48, seed=3)
    data = compressor().compress(photo)
    np.testing.assert_array_equal(compressor().decompress(data), photo)


def test_options_the_photo_model_cannot_take_keep_the_default_model(wide_is_photo):
    """The pixel model reads only interleaved subpixels: channel order pins the default model."""
    made = compressor(order="channel")
    photo = smooth_image(16, 48, seed=4)
    data = made.compress(photo)
    header = container.unpack(data)[0]
    assert header.model_id == DEFAULT_MODEL and header.order == "channel"
    np.testing.assert_array_equal(igc.decompress(data), photo)


def test_bench_names_each_rows_model(wide_is_photo):
    small, photo = smooth_image(16, 16, seed=5), smooth_image(16, 48, seed=6)
    result = igc.bench([small, photo], ["imagegpt"], estimate=True)
    assert [r.extra["model"] for r in result.results] == [DEFAULT_MODEL, PHOTO_MODEL]
    result = igc.bench([small, photo], ["imagegpt"])
    assert [r.extra["model"] for r in result.results] == [DEFAULT_MODEL, PHOTO_MODEL]
    assert all(r.roundtrip_ok for r in result.results)


@pytest.mark.parametrize("shape", [(512, 768), (768, 512), (1, 768 * 512), (2048, 1536)])
def test_whole_photographs_go_to_the_photo_model_and_get_context_mode_3(shape):
    """At and above a Kodak photo's size: the photo model, in the context mode that its
    measurements were made in (mode 3, which the codec picks for such sizes)."""
    made = compressor()
    codec = made.codec_for(np.zeros((*shape, 3), np.uint8))
    assert codec.model.name == PHOTO_MODEL
    if min(shape) > 1:
        assert context.default_mode(codec.model, codec.tokenizer, *shape) == context.EXPERT


@pytest.mark.parametrize("shape", [(511, 768), (767, 512), (256, 256), (32, 32), (1, 5000)])
def test_anything_smaller_goes_to_the_default_model(shape):
    made = compressor()
    assert made.codec_for(np.zeros((*shape, 3), np.uint8)).model.name == DEFAULT_MODEL
    assert photo_split.whole_photograph(*shape) is False

