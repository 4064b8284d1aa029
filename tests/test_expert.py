"""Context mode 3 (igc/codec/expert.py): mode 2 with a classical predictor over the decoded image
mixed into the adapted scores.

The decoder must rebuild the predictor bit for bit, so what is checked here is exactness: the
numba kernels compute the NumPy definition's integers, the pixel map puts every coded position
at its subpixel, and a committed file pins the definition (tests/test_overlap.py round-trips mode
3's files on every shape and engine, with mode 2's). What the mode saves on photographs is
measured in docs/design.md; here only that it learns, and that an image with smooth colour
differences gets cheaper than in mode 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import make_tiny_model, smooth_image

from igc.codec import adapt, expert, loop
from igc.core import container
from igc.core.overlap import OverlapTiling
from igc.core.tokenizer import SubpixelTokenizer
from igc.engines import expert as rules
from igc.plugins.compose import compose

FIXTURE = Path(__file__).parent / "data" / "igc-rgb16-v2-ctx3-v5.igc"
STATE = ("image", "error", "weights", "mag", "count", "slope")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("expert-tiny"), seed=7)


def _frequencies(r, rows: int) -> np.ndarray:
    """Random tables: rows of 256 entries >= 1 summing to 2**24, some of them peaked."""
    f = r.integers(1, 1 << 12, (rows, 256)) * np.where(r.random((rows, 256)) < 0.05, 900, 1)
    f = 1 + f * ((1 << 24) - 256) // f.sum(axis=1, keepdims=True)
    f[np.arange(rows), f.argmax(axis=1)] += (1 << 24) - f.sum(axis=1)
    return f


def _pixels(tile: int, shape: tuple[int, int]) -> np.ndarray:
    tiling = OverlapTiling(SubpixelTokenizer(tile))
    return tiling.pixels(*shape, tiling.layout(*shape).coded)


def _walk(tile: int, image: np.ndarray, batch: int, predictors, seed: int = 0):
    """Step `predictors` through `image` in the coding order of context mode 3 (windows by
    anti-diagonal, in batches), each given the same symbols and frequencies; yields after every
    step the outputs of `prepare`."""
    tiling = OverlapTiling(SubpixelTokenizer(tile))
    tok = tiling.encode(image)
    job = loop.Job(tok.tokens, tok.coded, None, groups=tok.groups)
    r = np.random.default_rng(seed)
    for group in loop.waves(job, tok.groups, batch, batch):
        windows = group.parts[0].rows
        for p in predictors:
            p.enter(windows)
        for t in range(group.steps):
            rows = windows.stop - windows.start
            out = [p.prepare(t, rows) for p in predictors]
            yield out
            coded = np.flatnonzero(tok.coded[windows, t])
            if len(coded):
                freqs = _frequencies(r, rows)
                for p in predictors:
                    p.observe(coded, tok.tokens[windows, t][coded], freqs)


@pytest.mark.parametrize("tile,shape,batch", [(4, (13, 22), 3), (4, (1, 37), 2), (16, (40, 33), 8),
                                              (2, (6, 7), 1)])
def test_the_numba_predictor_is_the_numpy_definition(tile, shape, batch):
    image = smooth_image(*shape, seed=shape[0])
    pixels = _pixels(tile, shape)
    fast = expert.OnlinePredictor(*shape, pixels)
    slow = expert.OnlinePredictor(*shape, pixels, fast=False)
    assert fast.kernels is not None and slow.kernels is None
    for i, ((pf, bf), (ps, bs)) in enumerate(_walk(tile, image, batch, (fast, slow))):
        np.testing.assert_array_equal(pf, ps, f"step {i}: predictions")
        np.testing.assert_array_equal(bf, bs, f"step {i}: slopes over scales")
        for a, b in zip(fast.step, slow.step, strict=True):
            np.testing.assert_array_equal(a, b, f"step {i}")
    for name in STATE:
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), name)
    # every subpixel was recorded once, where the pixel map says
    np.testing.assert_array_equal(fast.image, image.reshape(-1))
    assert fast.weights.any() and fast.slope.any()


def test_the_predictor_learns_to_predict_and_to_trust_itself():
    """On a smooth image the prediction error shrinks below the start's scale and the slope,
    which starts at zero, grows: the expert earns a weight."""
    shape = (48, 48)
    image = smooth_image(*shape, seed=2)
    p = expert.OnlinePredictor(*shape, _pixels(16, shape))
    errors = []
    for _ in _walk(16, image, 8, (p,)):
        at, *_, pred, _beta = p.step
        coded = at >= 0
        errors += list(np.abs((image.reshape(-1)[at[coded]].astype(np.int64) << 4) - pred[coded]))
    late = np.mean(errors[len(errors) // 2:]) / 16
    assert late < 4.0  # noise of sigma 3: mean |error| about 2.4 for a perfect predictor
    assert (p.slope > 0).sum() >= 3
    assert (p.mag < rules.MAG_START * p.count).any()


def test_the_pixel_map_names_each_coded_subpixel_once():
    for tile, shape in ((4, (13, 22)), (16, (33, 17)), (2, (1, 5)), (16, (1, 1))):
        tiling = OverlapTiling(SubpixelTokenizer(tile))
        image = smooth_image(*shape, seed=1)
        tok = tiling.encode(image)
        pixels = tiling.pixels(*shape, tok.coded).T
        assert pixels.dtype == np.int32 and ((pixels >= 0) == tok.coded).all()
        np.testing.assert_array_equal(np.sort(pixels[tok.coded]), np.arange(image.size))
        np.testing.assert_array_equal(image.reshape(-1)[pixels[tok.coded]], tok.tokens[tok.coded])


def test_the_adaptation_with_a_predictor_is_its_definition_in_every_path():
    """Frequencies and state: the kernels (one call, or lanes filling row slices) against the
    NumPy definition, with the predictor's term in the scores."""
    from concurrent.futures import ThreadPoolExecutor

    shape, tile, batch = (20, 26), 4, 5
    pixels = _pixels(tile, shape)
    image = smooth_image(*shape, seed=9)
    made = [adapt.OnlineAdaptation(16, 256, 11, fast=fast, min_rows=adapt.MIN_ROWS_OVERLAP,
                                   predictor=expert.OnlinePredictor(*shape, pixels, fast=fast))
            for fast in (True, False, True)]
    fast, slow, lanes = made
    tiling = OverlapTiling(SubpixelTokenizer(tile))
    tok = tiling.encode(image)
    job = loop.Job(tok.tokens, tok.coded, None, groups=tok.groups)
    r = np.random.default_rng(4)
    with ThreadPoolExecutor(2) as pool:
        for group in loop.waves(job, tok.groups, batch, batch):
            windows = group.parts[0].rows
            rows = windows.stop - windows.start
            for ad in made:
                ad.enter(windows)
            for t in range(group.steps):
                hidden = r.integers(-3000, 3000, (rows, 16))
                logits = r.integers(-40 << 16, 8 << 16, (rows, 256))
                want = slow.frequencies(t, hidden, logits)
                np.testing.assert_array_equal(fast.frequencies(t, hidden, logits), want)
                got = lanes.begin(t, rows)
                half = slice(0, rows // 2), slice(rows // 2, rows)
                for done in [pool.submit(lanes.fill, sl, hidden[sl], logits[sl]) for sl in half]:
                    done.result()
                np.testing.assert_array_equal(got, want)
                coded = tok.coded[windows, t]
                if coded.any():
                    for ad in made:
                        ad.observe(coded, tok.tokens[windows, t][coded])
    for ad in (fast, lanes):
        for name in ("temp", "calib", "head"):
            np.testing.assert_array_equal(getattr(ad, name), getattr(slow, name), name)
        for name in STATE:
            np.testing.assert_array_equal(getattr(ad.expert, name), getattr(slow.expert, name))
    assert slow.expert.slope.any()


def test_smooth_colour_differences_cost_less_than_in_mode_2():
    """The point of the mode: on a decoded JPEG (smooth chroma: G - R varies slowly) the
    shipped model spends fewer bits with the predictor's term (a 48×48 crop of the retina photo
    bundled with scikit-image; photographs in docs/results.md)."""
    from igc.benchmark import sources

    retina = next(s for s in sources.gallery() if s.name.startswith("retina"))
    image = sources.center_crop(retina.load().pixels, 48)
    two = compose(None, context=2).encode(image)
    three = compose(None, context=3).encode(image)
    assert three.model_bits < 0.97 * two.model_bits
    np.testing.assert_array_equal(compose(None).decode(three.data), image)


def test_mode_3_needs_overlapping_subpixel_windows(tiny, tmp_path):
    from helpers import make_palette_model

    from igc.errors import UsageError

    with pytest.raises(UsageError, match="context mode 3 adapts a numerics-2"):
        compose(tiny, context=3, numerics=1)
    with pytest.raises(UsageError, match="context mode 3"):
        compose(make_palette_model(tmp_path), context=3)


def test_the_committed_mode_3_file_decodes():
    """Pins the mode's definition: a change to the predictor, its constants or the adaptation
    breaks this file (written by `igc compress --context 3` of the synthetic 40x48 image beside
    it, helpers.smooth_image(40, 48, seed=11))."""
    from PIL import Image

    header, _ = container.unpack(FIXTURE.read_bytes())
    assert (header.context, header.numerics, header.version) == (3, 2, 5)
    want = np.asarray(Image.open(FIXTURE.with_suffix(".png")))
    np.testing.assert_array_equal(want, smooth_image(40, 48, seed=11))
    np.testing.assert_array_equal(compose(header.model_id).decode(FIXTURE.read_bytes()), want)


def test_compress_takes_mode_3_and_info_names_it(tiny, tmp_path):
    from helpers import invoke
    from PIL import Image

    Image.fromarray(smooth_image(13, 17, seed=3)).save(tmp_path / "a.png")
    out = tmp_path / "a.igc"
    result = invoke("compress", str(tmp_path / "a.png"), "-m", tiny, "-o", str(out),
                    "--context", "3")
    assert result.exit_code == 0, result.output
    assert container.unpack(out.read_bytes())[0].context == 3
    info = invoke("info", str(out))
    assert "mode 3: mode 2, and a classical predictor" in info.output
    assert "the windows of an anti-diagonal" in info.output
    back = invoke("decompress", str(out), "-m", tiny, "-o", str(tmp_path / "b.png"))
    assert back.exit_code == 0, back.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")),
                                  smooth_image(13, 17, seed=3))
