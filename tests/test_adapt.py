"""Context mode 1 (igc/codec/adapt.py): the model adapted to the image as it is coded.

The decoder must rebuild the adaptation bit for bit, so what is checked here is exactness: every
engine gives the same head input and logits, the state does not depend on the order of the rows
within a step (lanes and threads), files round-trip exactly whatever the image's shape, and a
committed file pins the mode's definition. That the mode saves bits on photographs is measured
by scripts/adapt_files.py (docs/results.md), not here; this file checks only that learning moves
the state and that a smooth image gets cheaper.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import make_tiny_model, smooth_image

from igc.codec import adapt
from igc.codec.neural import ADAPT_MIN_TILES
from igc.core import container
from igc.engines.integer import ReferenceEngine, frequencies, quantize
from igc.engines.integer_cpu import CpuEngine
from igc.errors import FormatError, ModelError, UsageError
from igc.models.imagegpt import ImageGPTModel
from igc.plugins.compose import compose

FIXTURE = Path(__file__).parent / "data" / "igc-rgb16-v2-ctx1-v5.igc"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("adapt-tiny"), seed=3)


def test_log2_table_is_log2_rounded():
    table = adapt.log2_table()
    want = np.rint(4096 * np.log2(1 + np.arange(4096) / 4096))
    assert np.abs(table - want).max() <= 1 and table[0] == 0 and table[-1] == 4095
    v = np.array([1, 2, 4096, 1 << 30, (1 << 30) + 1, 3 << 35])
    got = adapt.log2_q12(v)
    assert got[:4].tolist() == [0, 4096, 12 * 4096, 30 * 4096]
    assert abs(got[5] - 4096 * math.log2(3 << 35)) <= 1


@pytest.mark.parametrize("width,heads,batch", [(32, 4, 3), (24, 8, 1), (40, 2, 5)])
def test_every_engine_gives_the_same_head_input_and_logits(tmp_path, width, heads, batch):
    import torch  # noqa: F401  (the torch engine)

    from igc.engines.integer_torch import TorchEngine

    runtime = ImageGPTModel(make_tiny_model(tmp_path, width=width, heads=heads, seed=width)).runtime
    model = quantize(runtime)
    engines = [ReferenceEngine(model), CpuEngine(model), TorchEngine(model, "cpu")]
    states = [e.start(batch, 48) for e in engines]
    seqs = np.random.default_rng(width).integers(0, 256, (batch, 48))
    seqs[:, 0] = 256
    for t in range(48):
        ref_h, ref_l = engines[0].step_logits(states[0], seqs[:, t])
        assert ref_h.shape == (batch, width) and ref_l.shape == (batch, 256)
        for e, st in zip(engines[1:], states[1:], strict=True):
            h, logits = e.step_logits(st, seqs[:, t])
            np.testing.assert_array_equal(h, ref_h, err_msg=f"{e.name} step {t}")
            np.testing.assert_array_equal(logits, ref_l, err_msg=f"{e.name} step {t}")
    # and `step` is frequencies(logits): the same cache gives the same next step either way
    fresh = engines[1].start(batch, 48)
    again = engines[1].start(batch, 48)
    for t in range(5):
        f = engines[1].step(fresh, seqs[:, t])
        np.testing.assert_array_equal(f, frequencies(engines[1].step_logits(again, seqs[:, t])[1]))


def _steps(rows: int, seed: int, vocab: int = 256, channels: int = 16):
    r = np.random.default_rng(seed)
    for t in range(12):
        hidden = r.integers(-3000, 3000, (rows, channels))
        logits = r.integers(-40 << 16, 8 << 16, (rows, vocab))
        symbols = r.integers(0, vocab, rows)
        yield t, hidden, logits, symbols


def test_frequencies_are_a_table_and_learning_moves_the_state():
    ad = adapt.OnlineAdaptation(16, 256, 11)
    first = None
    for t, hidden, logits, symbols in _steps(7, 0):
        f = ad.frequencies(t, hidden, logits)
        assert f.min() >= 1 and (f.sum(axis=1) == 1 << 24).all()
        first = f if first is None else first
        ad.observe(np.ones(7, bool), symbols)
    assert ad.temp.any() and ad.calib.any() and ad.head.any()
    assert np.abs(ad.head).max() <= adapt.U_MAX


@pytest.mark.parametrize("rows,seed", [(1, 2), (9, 3), (40, 4), (67, 5)])
def test_the_numba_rules_are_the_numpy_definition(rows, seed):
    """igc.engines.adapt_cpu computes what adapt.py's NumPy lines define, bit for bit."""
    from concurrent.futures import ThreadPoolExecutor

    fast = adapt.OnlineAdaptation(16, 256, 11)
    slow = adapt.OnlineAdaptation(16, 256, 11, fast=False)
    split = adapt.OnlineAdaptation(16, 256, 11)  # rows split over three threads
    split.pool, split.workers = ThreadPoolExecutor(3), 3
    assert fast.kernels is not None and slow.kernels is None
    for t, hidden, logits, symbols in _steps(rows, seed):
        logits[0, :5] = logits[0].max()  # ties for the largest
        want = slow.frequencies(t, hidden, logits)
        np.testing.assert_array_equal(fast.frequencies(t, hidden, logits), want, f"step {t}")
        np.testing.assert_array_equal(split.frequencies(t, hidden, logits), want, f"step {t}")
        coded = np.arange(rows) % 3 != 1
        fast.observe(coded, symbols[coded])
        split.observe(coded, symbols[coded])
        slow.observe(np.flatnonzero(coded), symbols[coded])
        for other in (fast, split):
            for x, y in ((other.temp, slow.temp), (other.calib, slow.calib),
                         (other.head, slow.head)):
                np.testing.assert_array_equal(x, y, err_msg=f"step {t}")
    split.pool.shutdown()
    assert fast.head.any()


def test_lanes_filling_their_rows_give_the_steps_frequencies():
    """A decoder's lanes fill their own row slices (begin/fill), in any order and thread, and
    an observe of every row (slice(None)) learns what a mask of every row does."""
    from concurrent.futures import ThreadPoolExecutor

    whole, lanes = adapt.OnlineAdaptation(16, 256, 11), adapt.OnlineAdaptation(16, 256, 11)
    slices = [slice(6, 11), slice(0, 3), slice(3, 6)]
    with ThreadPoolExecutor(3) as pool:
        for t, hidden, logits, symbols in _steps(11, 6):
            want = whole.frequencies(t, hidden, logits)
            got = lanes.begin(t, 11)
            for done in [pool.submit(lanes.fill, sl, hidden[sl], logits[sl]) for sl in slices]:
                done.result()
            np.testing.assert_array_equal(got, want, f"step {t}")
            if t % 2:  # every row coded
                whole.observe(np.ones(11, bool), symbols)
                lanes.observe(slice(None), symbols)
            else:  # some rows are context or padding
                coded = np.arange(11) % 3 != t % 3
                whole.observe(np.flatnonzero(coded), symbols[coded])
                lanes.observe(coded, symbols[coded])
    for x, y in ((whole.temp, lanes.temp), (whole.calib, lanes.calib), (whole.head, lanes.head)):
        np.testing.assert_array_equal(x, y)
    assert whole.head.any()
    with pytest.raises(ModelError, match="head takes 16 channels"):
        lanes.begin(0, 4)
        lanes.fill(slice(0, 4), np.zeros((4, 20), np.int64), np.zeros((4, 256), np.int64))


def test_observe_takes_a_slice_of_rows_as_the_definition_does():
    fast, slow = adapt.OnlineAdaptation(16, 256, 11), adapt.OnlineAdaptation(16, 256, 11, False)
    for t, hidden, logits, symbols in _steps(9, 7):
        for ad in (fast, slow):
            ad.frequencies(t, hidden, logits)
            ad.observe(slice(2, 7), symbols[2:7])
    for x, y in ((fast.temp, slow.temp), (fast.calib, slow.calib), (fast.head, slow.head)):
        np.testing.assert_array_equal(x, y)
    assert fast.temp.any()


@pytest.mark.parametrize("shift", [13, 21, 40])
def test_the_numba_update_is_the_definition_at_the_extremes(shift):
    """learn's mean step (a float quotient, corrected; huge steps cut to 2**33, which the
    clamp makes invisible; a shift where the row count is a power of two) is
    adapt._mean_step's exact rounding, clamped, for saturated sums, quotients at .5 and near
    the float's limits, row counts up to MAX_ROWS, powers of two and others."""
    from igc.engines import adapt_cpu

    rng = np.random.default_rng(shift)
    lim, num, low, high = adapt.SUM_LIM, 277, -adapt.U_MAX, adapt.U_MAX
    for count in (1, 2, 7, 32, 1000, 4096, adapt.MAX_ROWS - 1, adapt.MAX_ROWS):
        den = count << shift
        grad = np.concatenate([
            rng.integers(-(1 << 62), 1 << 62, 2000),  # saturated at +-2**52 first
            rng.integers(-(1 << 40), 1 << 40, 2000),
            rng.integers(-den * 4, den * 4, 2000),
            # total * num exactly at k + 1/2 quotients and around them: the rounding's edges
            np.repeat((np.arange(-50, 50) * 2 + 1) * den // (2 * num), 3) + np.tile([-1, 0, 1], 100),
            [0, 1, -1, lim, -lim, lim + 1, -lim - 1, (1 << 63) - 1, -(1 << 63)],
        ]).astype(np.int64)
        state = rng.integers(low, high, len(grad)).astype(np.int64)
        want = np.clip(state + adapt._mean_step(grad, (num, 0), count, shift), low, high)
        got = state.copy()
        adapt_cpu.learn(got, grad, num, shift, count, lim, low, high)
        np.testing.assert_array_equal(got, want, err_msg=f"count {count}")


def test_the_state_does_not_depend_on_the_order_of_rows():
    """Lanes and threads only reorder rows within a step: integer sums cannot tell."""
    a, b = adapt.OnlineAdaptation(16, 256, 11), adapt.OnlineAdaptation(16, 256, 11)
    perm = np.random.default_rng(5).permutation(9)
    for t, hidden, logits, symbols in _steps(9, 1):
        fa = a.frequencies(t, hidden, logits)
        fb = b.frequencies(t, hidden[perm], logits[perm])
        np.testing.assert_array_equal(fa[perm], fb)
        coded = np.arange(9) % 4 != 0  # some rows are padding, not coded
        a.observe(coded, symbols[coded])
        b.observe(coded[perm], symbols[perm][coded[perm]])
    for x, y in ((a.temp, b.temp), (a.calib, b.calib), (a.head, b.head)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("shape", [(1, 37), (29, 1), (4, 4), (3, 3), (13, 22), (17, 9)])
def test_mode_1_round_trips_exactly_on_any_shape(tiny, shape):
    codec = compose(tiny, context=1, batch=3)
    image = smooth_image(*shape, seed=shape[0])
    data = codec.encode(image).data
    assert container.unpack(data)[0].context == 1
    np.testing.assert_array_equal(codec.decode(data), image)


def test_the_decoder_reads_the_mode_from_the_header_and_other_engines_agree(tiny):
    from igc.engines.engines import using_engine

    image = smooth_image(14, 19, seed=4)
    with using_engine("reference"):
        data = compose(tiny, context=1, batch=2).encode(image).data
    with using_engine("cpu"):
        again = compose(tiny, context=1, batch=2).encode(image).data
        assert again == data
        # a codec whose own choice for new files is mode 0 decodes mode 1 from the header
        np.testing.assert_array_equal(compose(tiny, context=0).decode(data), image)


def test_adaptation_changes_the_bits_and_a_smooth_image_gets_cheaper(tiny):
    image = smooth_image(24, 24, seed=2)
    alone = compose(tiny, context=0).encode(image)
    adapted = compose(tiny, context=1).encode(image)
    assert adapted.data != alone.data
    # a random model is badly calibrated for any image: the adaptation must find that
    assert adapted.model_bits < 0.97 * alone.model_bits


def test_the_default_adapts_images_of_enough_tiles(tiny):
    codec = compose(tiny)
    small = smooth_image(4 * 2, 4 * 2)  # 4 tiles of 4x4
    large = smooth_image(4 * 4, 4 * ADAPT_MIN_TILES // 4)
    assert container.unpack(codec.encode(small).data)[0].context == 0
    assert container.unpack(codec.encode(large).data)[0].context == 1


def test_a_mode_the_model_cannot_compute_is_refused(tiny):
    with pytest.raises(UsageError, match="unknown context mode 5"):
        compose(tiny, context=5)
    for wrong in ("1", 1.0, True):  # the library's types, refused in words, never a TypeError
        with pytest.raises(UsageError, match=f"unknown context mode {wrong!r}"):
            compose(tiny, context=wrong)
    with pytest.raises(UsageError, match="context mode 1 adapts a numerics-2"):
        compose(tiny, context=1, numerics=1)
    header = container.unpack(compose(tiny, context=1).encode(smooth_image(8, 8)).data)[0]
    with pytest.raises(FormatError, match=r"context mode 1 .* cannot compute under numerics 1"):
        compose(tiny, numerics=1).check_model(dataclasses.replace(header, numerics=1))


def test_the_committed_mode_1_file_decodes():
    """Pins the mode's definition: a change to any of its constants or rules breaks this file
    (written by `igc compress --context 1 --batch 8` of the synthetic 40x48 image beside it,
    helpers.smooth_image(40, 48, seed=11))."""
    from PIL import Image

    header, _ = container.unpack(FIXTURE.read_bytes())
    codec = compose(header.model_id)
    assert (header.context, header.numerics, header.version) == (1, 2, 5)
    want = np.asarray(Image.open(FIXTURE.with_suffix(".png")))
    np.testing.assert_array_equal(codec.decode(FIXTURE.read_bytes()), want)


def test_the_estimate_of_mode_1_is_the_encoders_model_bits(tiny):
    """--estimate cannot take its one parallel pass in mode 1: it steps the encoder's loop."""
    codec = compose(tiny, context=1, batch=5)
    image = smooth_image(12, 21, seed=6)
    assert codec.estimate_bits(image) == codec.encode(image).model_bits
    alone = compose(tiny, context=0)
    assert alone.estimate_bits(image) == pytest.approx(alone.encode(image).model_bits, rel=1e-3)


def test_compress_takes_the_context_mode_and_info_names_it(tiny, tmp_path):
    from helpers import invoke
    from PIL import Image

    Image.fromarray(smooth_image(16, 16, seed=8)).save(tmp_path / "a.png")  # 16 tiles of 4x4
    for mode in ("0", "1", None):
        out = tmp_path / f"a{mode}.igc"
        args = ["compress", str(tmp_path / "a.png"), "-m", tiny, "-o", str(out)]
        result = invoke(*(args + (["--context", mode] if mode else [])))
        assert result.exit_code == 0, result.output
        assert container.unpack(out.read_bytes())[0].context == int(mode or 1)
    info = invoke("info", str(tmp_path / "a1.igc"))
    assert "mode 1: tiles coded alone, the model adapted" in info.output
    bad = invoke("compress", str(tmp_path / "a.png"), "-m", tiny, "-o", str(tmp_path / "b.igc"),
                 "--context", "5")
    assert bad.exit_code != 0 and not (tmp_path / "b.igc").exists()


def test_threads_and_lanes_do_not_change_a_mode_1_file(tiny):
    """Lanes step on threads; the adaptation sums their rows as integers, so neither the lane
    size an encoder picks nor the decoder's thread count can change what it computes."""
    import torch

    image = smooth_image(13, 26, seed=9)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = compose(tiny, context=1, batch=6, lane=6).encode(image)
        torch.set_num_threads(2)
        two = compose(tiny, context=1, batch=6, lane=2).encode(image)
        assert one.model_bits == two.model_bits
        np.testing.assert_array_equal(compose(tiny).decode(one.data), image)
        torch.set_num_threads(1)
        np.testing.assert_array_equal(compose(tiny).decode(two.data), image)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("mode", [1, 2])
def test_several_adapted_files_decode_together_each_with_its_own_state(tiny, mode):
    codec = compose(tiny, context=mode, batch=4)
    images = [smooth_image(9, 14, seed=s) for s in (1, 2, 3)]
    datas = [r.data for r in codec.encode_many(images)]
    assert datas == [codec.encode(im).data for im in images]
    for got, want in zip(codec.decode_many(datas), images, strict=True):
        np.testing.assert_array_equal(got, want)


def test_mode_1_batches_and_memory_are_bounded(tiny):
    """A step's gradient sums are exact in int64 only up to MAX_ROWS tiles: encoders never write
    more, decoders refuse more; the memory budget counts the adaptation's arrays."""
    from igc.codec import memory

    codec = compose(tiny, context=1, batch=10**6)
    assert codec.batch_for(10**6) == adapt.MAX_ROWS
    header = container.unpack(compose(tiny, context=1).encode(smooth_image(8, 8)).data)[0]
    with pytest.raises(FormatError, match="steps at most 65536 tiles at once"):
        codec.check_model(dataclasses.replace(header, batch=adapt.MAX_ROWS + 1))
    big = dataclasses.replace(header, height=400, width=400, batch=256)
    alone = memory.decode_bytes(codec.model, codec.tokenizer, dataclasses.replace(big, context=0))
    adapted = memory.decode_bytes(codec.model, codec.tokenizer, big)
    assert adapted[1] - alone[1] == adapt.state_bytes(256, 32, 256) > 256 * 256 * 8 * 8


@pytest.mark.parametrize("rows,symbols,channels", [(1, 256, 17), (5, 255, 129), (9, 7, 512)])
def test_the_head_product_is_exact_at_the_definitions_bounds(rows, symbols, channels):
    """adapt_cpu's head product runs in float64 lanes in whatever order the compiler picks:
    exact because |U| < 2**29 and |h| < 2**15 keep every partial sum of up to MAX_CHANNELS + 1
    products below 2**53. Weights and inputs at those bounds (odd row and symbol counts too)
    give Python's exact integers."""
    from igc.engines import adapt_cpu

    rng = np.random.default_rng(rows)
    h1 = rng.choice([-(2**15) + 1, 2**15 - 1, 1, 0], (rows, channels)).astype(np.int64)
    weights = rng.choice([-adapt.U_MAX, adapt.U_MAX, 3], (symbols, channels)).astype(np.int64)
    h1[0], weights[-1] = 2**15 - 1, adapt.U_MAX  # one sum as large as the bounds allow
    out = np.zeros((rows, symbols), np.int64)
    adapt_cpu.head_product(h1, weights, out)
    want = (h1.astype(object) @ weights.T.astype(object)).astype(np.int64)
    np.testing.assert_array_equal(out, want)
    assert want[0, -1] == (2**15 - 1) * adapt.U_MAX * channels


def test_the_head_gradient_is_exact_over_blocks_of_rows():
    """The head's gradient sums q[i, k] * h[i, c] over the step's rows in float64 blocks of
    ROWS_EXACT rows (each partial sum below 2**53 when |q h| < 2**40), then in int64: 9,003
    rows of one sign at that bound (three blocks, the last not a multiple of four rows), where
    one float64 sum over them all would not be exact, give Python's exact integers."""
    from igc.engines import adapt_cpu

    assert adapt_cpu.ROWS == adapt.ROWS_EXACT
    rng = np.random.default_rng(0)
    rows, symbols, channels = 9003, 3, 5
    h = rng.choice([2**15 - 1, 2**15 - 3], (rows, channels))
    q = rng.choice([2**25 - 1, 2**25 - 5], (rows, symbols))  # |q h| just below 2**40
    want = (q.astype(object).T @ h.astype(object)).astype(np.int64)
    assert not np.array_equal((q.T.astype(np.float64) @ h).astype(np.int64), want)
    grad = np.zeros((symbols, channels), np.int64)
    adapt_cpu.outer_sums(q.astype(np.float64), h.astype(np.float64), grad)
    np.testing.assert_array_equal(grad, want)
