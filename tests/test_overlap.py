"""Context mode 2 (igc/core/overlap.py, igc/codec/context.py): windows overlapping their upper and
left neighbours by one pixel, stepped by anti-diagonals, the model adapted as in mode 1 (and
mode 3, which adds a predictor: the round trips here run both).

What is checked: the layout codes every pixel exactly once and reads context only from windows
of earlier anti-diagonals; files round-trip exactly on any shape and on every engine; the
estimate is the encoder's own model bits; the default picks the mode on large images only; a
committed file pins the definition. What the mode saves on photographs is measured in
docs/results.md, not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import make_tiny_model, smooth_image

from igc.codec import context
from igc.core import container
from igc.core.overlap import OverlapTiling, window_grid
from igc.core.tokenizer import SubpixelTokenizer
from igc.errors import UsageError
from igc.plugins.compose import compose

FIXTURE = Path(__file__).parent / "data" / "igc-rgb16-v2-ctx2-v5.igc"
SHAPES = [(1, 1), (1, 37), (29, 1), (4, 4), (5, 5), (3, 3), (13, 22), (17, 9), (7, 8)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("overlap-tiny"), seed=5)


@pytest.mark.parametrize("tile", [2, 4, 16])
@pytest.mark.parametrize("shape", [*SHAPES, (40, 48), (31, 16)])
def test_every_pixel_is_coded_once_and_context_comes_from_earlier_waves(tile, shape):
    tiling = OverlapTiling(SubpixelTokenizer(tile))
    image = smooth_image(*shape, seed=tile)
    tok = tiling.encode(image)
    rows, cols = window_grid(*shape, tile)
    assert len(tok.tokens) == rows * cols == sum(tok.groups)
    assert tok.coded.sum() == image.size  # each subpixel coded by exactly one window
    np.testing.assert_array_equal(tiling.decode(tok.tokens, *shape), image)
    # context positions copy coded positions of windows in earlier anti-diagonals
    wave = np.repeat(np.arange(len(tok.groups)), tok.groups)
    has = tok.context_source >= 0
    window, _ = np.nonzero(has)
    source = tok.context_source[has]
    assert tok.coded.reshape(-1)[source].all()
    assert (wave[source // tiling.length] < wave[window]).all()
    np.testing.assert_array_equal(tok.tokens[has], tok.tokens.reshape(-1)[source])
    # no position is both coded and copied, and padding copies earlier positions of its window
    assert not (tok.coded & has).any() and not (tok.coded & (tok.pad_source >= 0)).any()
    pads = np.nonzero(tok.pad_source >= 0)
    assert (tok.pad_source[pads] < pads[1]).all()


def test_windows_overlap_by_one_row_and_column():
    tiling = OverlapTiling(SubpixelTokenizer(4))
    assert window_grid(7, 10, 4) == (2, 3)  # origins 0, 3 (rows) and 0, 3, 6 (columns)
    tok = tiling.layout(7, 10)
    assert tok.groups == (1, 2, 2, 1)
    coded = tok.coded.reshape(-1, 4, 4, 3)[..., 0]
    assert coded[0].all()  # window (0, 0) codes all its pixels
    assert not coded[1][:, 0].any() and coded[1][:, 1:].all()  # (0, 1): its first column is context
    assert not coded[2][0].any() and coded[2][1:].all()  # (1, 0): its first row is context
    last = coded[-1]  # (1, 2): rows 4..6 and columns 7..9 of the image, one row padding
    assert not last[0].any() and not last[:, 0].any() and last[1:, 1:].all()


@pytest.mark.parametrize("mode", context.OVERLAPPED)
@pytest.mark.parametrize("shape", SHAPES)
def test_overlapping_modes_round_trip_exactly_on_any_shape(tiny, shape, mode):
    """Modes 2 and 3 (mode 3 adds its predictor: tests/test_expert.py)."""
    codec = compose(tiny, context=mode, batch=3)
    image = smooth_image(*shape, seed=shape[1])
    data = codec.encode(image).data
    assert container.unpack(data)[0].context == mode
    np.testing.assert_array_equal(compose(tiny, context=0).decode(data), image)


@pytest.mark.parametrize("mode", context.OVERLAPPED)
def test_engines_agree_and_threads_do_not_change_an_overlapping_file(tiny, mode):
    import torch

    from igc.engines.engines import using_engine

    image = smooth_image(14, 19, seed=4)
    with using_engine("reference"):
        data = compose(tiny, context=mode, batch=2).encode(image).data
    threads = torch.get_num_threads()
    try:
        for n, lane in ((1, 2), (2, 1)):
            torch.set_num_threads(n)
            with using_engine("cpu"):
                again = compose(tiny, context=mode, batch=2, lane=lane).encode(image).data
                # the header records the lane; the coded stream is the same
                assert container.unpack(again)[1] == container.unpack(data)[1]
                np.testing.assert_array_equal(compose(tiny).decode(data), image)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("mode", context.OVERLAPPED)
def test_the_estimate_of_an_overlapping_mode_is_the_encoders_model_bits(tiny, mode):
    codec = compose(tiny, context=mode, batch=4)
    image = smooth_image(12, 21, seed=6)
    assert codec.estimate_bits(image) == codec.encode(image).model_bits


def test_the_default_overlaps_large_images_only(tiny):
    """Overlapping windows, with mode 3's predictor, when the anti-diagonals average
    OVERLAP_MIN_WAVE windows (about 8 × 2 tiles a side); mode 1 below, down to ADAPT_MIN_TILES
    tiles."""
    codec = compose(tiny)  # 4x4 tiles: windows 3 pixels apart
    side = 3 * 2 * context.OVERLAP_MIN_WAVE + 1
    assert codec.context_for(0, (side, side)) == 3
    assert codec.context_for(0, (side - 6, side - 6)) == 1
    assert container.unpack(codec.encode(smooth_image(side, side)).data)[0].context == 3
    assert container.unpack(codec.encode(smooth_image(16, 16)).data)[0].context == 1


def test_mode_2_is_refused_where_it_cannot_run(tiny, tmp_path):
    from helpers import make_palette_model

    with pytest.raises(UsageError, match="context mode 2 adapts a numerics-2"):
        compose(tiny, context=2, numerics=1)
    with pytest.raises(UsageError, match="context mode 2"):
        compose(make_palette_model(tmp_path), context=2)
    with pytest.raises(UsageError, match="overlap subpixel tiles of at least 2 pixels"):
        OverlapTiling(SubpixelTokenizer(1))


def test_tokens_of_the_wrong_layout_are_refused(tiny):
    image = smooth_image(7, 8)
    with pytest.raises(UsageError, match="tokens laid out for context mode 0 or 1"):
        compose(tiny, context=2).stepped_bits(compose(tiny).tokenizer.encode(image))
    windows = OverlapTiling(compose(tiny).tokenizer).encode(image)
    with pytest.raises(UsageError, match="tokens laid out for context mode 2"):
        compose(tiny, context=1).stepped_bits(windows)


def test_a_damaged_mode_2_file_names_window_regions(tiny):
    import dataclasses

    from igc.errors import ChecksumError

    codec = compose(tiny, context=2)
    data = codec.encode(smooth_image(10, 11)).data
    header, payload = container.unpack(data)
    bad = container.pack(dataclasses.replace(header, checksum=header.checksum ^ 1), payload)
    with pytest.raises(ChecksumError, match="checksum: the file is corrupted"):
        codec.decode(bad)
    wrong = dataclasses.replace(header, checksum=header.checksum ^ 1,
                                region_checks=bytes(b ^ 1 for b in header.region_checks))
    with pytest.raises(ChecksumError, match=r"\(windows in coding order, by anti-diagonal\)"):
        codec.decode(container.pack(wrong, payload))


def test_the_shipped_model_spends_fewer_bits_with_its_neighbours():
    """The point of the mode, on photographs with the default model: fewer bits than mode 1
    (a 64×64 crop of a photo bundled with scikit-image here; on Kodak, docs/results.md)."""
    from igc.benchmark import sources

    image = sources.center_crop(sources.gallery()[0].load().pixels, 64)
    one = compose(None, context=1).encode(image)
    two = compose(None, context=2).encode(image)
    assert two.model_bits < one.model_bits


def test_the_committed_mode_2_file_decodes():
    """Pins the mode's definition: a change to its layout, order, or its adaptation breaks this
    file (written by `igc compress --context 2` of the synthetic 40x48 image beside it,
    helpers.smooth_image(40, 48, seed=11))."""
    from PIL import Image

    header, _ = container.unpack(FIXTURE.read_bytes())
    assert (header.context, header.numerics, header.version) == (2, 2, 5)
    want = np.asarray(Image.open(FIXTURE.with_suffix(".png")))
    np.testing.assert_array_equal(want, smooth_image(40, 48, seed=11))
    np.testing.assert_array_equal(compose(header.model_id).decode(FIXTURE.read_bytes()), want)


def test_waves_step_in_batches_and_in_at_least_two_even_lanes():
    from igc.codec import loop

    job = loop.Job(np.zeros((108, 4), np.int64), np.ones((108, 4), bool), None)
    plan = loop.waves(job, (1, 2, 35, 70), 64, 32)
    got = [(g.parts[0].rows.start, g.parts[0].rows.stop, g.lane) for g in plan]
    assert got == [(0, 1, 1), (1, 3, 1), (3, 38, 18), (38, 102, 32), (102, 108, 3)]
    with pytest.raises(ValueError, match="waves of 10 windows for a job of 108"):
        loop.waves(job, (10,), 64, 32)
