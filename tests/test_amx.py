"""AMX-int8 weight products (igc/engines/amx.py): the same integers as pmaddwd and the reference.

The layout and the byte split are checked on any CPU (in NumPy, tile by tile, as the units
compute); the kernel itself only where this CPU, numba's target and the kernel allow AMX."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_tiny_model
from test_integer_cpu import random_sequences

from igc.engines import amx
from igc.engines.integer import ReferenceEngine, quantize
from igc.engines.integer_cpu import CpuEngine, _linear, instruction_set, pack_weights
from igc.errors import ModelError
from igc.models.imagegpt import ImageGPTModel

needs_amx = pytest.mark.skipif(not amx.usable(), reason="no AMX on this CPU (or IGC_AMX=0)")
SHAPES = [(1, 1, 1), (3, 7, 17), (16, 128, 384), (17, 128, 384), (6, 513, 40), (5, 1100, 16),
          (9, 4096, 3), (33, 300, 100), (2, 600, 70), (19, 130, 66), (40, 64, 32)]


def extremes(rows: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights and activations at +-127 and +-32767 in their first and last row or column,
    random elsewhere."""
    rng = np.random.default_rng(k + n)
    w = rng.integers(-127, 128, (k, n))
    w[:, 0], w[:, -1] = 127, -127
    x = rng.integers(-32767, 32768, (rows, k))
    x[0], x[-1] = 32767, -32767
    return x, w


def tiles_in_numpy(x: np.ndarray, k: int, packed: np.ndarray, nout: int) -> np.ndarray:
    """What `amx.linear` computes, written out: bytes of 16-row activation tiles times the
    packed weight tiles (4 inputs of a channel side by side), int32 tile sums combined as
    256 hi + lo."""
    kp = packed.shape[0] * 4
    rows = -(-len(x) // 16) * 16
    xs = np.zeros((rows, kp), np.int64)
    xs[: len(x), :k] = x[:, :k]
    hi, lo = (xs >> 8).astype(np.int8), (xs & 255).astype(np.uint8)
    assert np.array_equal(256 * hi.astype(np.int64) + lo, xs)
    out = np.zeros((rows, nout), np.int64)
    for n0 in range(0, nout, 16):
        sums = np.zeros((2, rows, 16), np.int64)
        for kb in range(0, kp, 64):
            tile = packed[kb // 4 : kb // 4 + 16, 4 * n0 : 4 * n0 + 64]  # 16 x 64 bytes
            b = tile.reshape(16, 16, 4).transpose(0, 2, 1).reshape(64, 16).astype(np.int64)
            sums[0] += hi[:, kb : kb + 64].astype(np.int64) @ b
            sums[1] += lo[:, kb : kb + 64].astype(np.int64) @ b
        assert np.abs(sums).max() < 2**31  # each tile sum fits its int32 lane
        out[:, n0 : n0 + 16] = 256 * sums[0] + sums[1]
    return out[: len(x)]


@pytest.mark.parametrize("rows,k,n", SHAPES)
def test_the_tile_layout_gives_the_exact_product(rows, k, n):
    x, w = extremes(rows, k, n)
    packed = amx.pack_weights(w.astype(np.int8))
    assert packed.shape == (-(-k // 64) * 16, 4 * (-(-n // 32) * 32))
    nout = -(-n // 16) * 16
    np.testing.assert_array_equal(tiles_in_numpy(x, k, packed, nout)[:, :n], x @ w)


@needs_amx
@pytest.mark.parametrize("rows,k,n", SHAPES)
def test_amx_product_equals_pmaddwd_at_the_extremes(rows, k, n):
    """The kernel against the exact product and `_linear`'s, with garbage past the input's width
    (its weights are 0) and sentinels past the output's: written are exactly nout columns."""
    x, w = extremes(rows, k, n)
    packed, wa = pack_weights(w.astype(np.int8)), amx.pack_weights(w.astype(np.int8))
    xin = np.full((rows, 2 * packed.shape[0] + 6), -12345, np.int16)
    xin[:, :k] = x
    nout = packed.shape[1] // 2
    want = np.zeros((rows, nout + 16), np.int64)
    _linear(xin, packed, want)
    kp = wa.shape[0] * 4
    got = np.full((rows, nout + 16), 7, np.int64)
    amx.linear(xin, 2 * packed.shape[0], wa, nout, got,
               np.full((16, kp + 64), 99, np.int8), np.full((16, kp + 64), 99, np.uint8),
               np.zeros(1024, np.int32), amx.tile_config())
    np.testing.assert_array_equal(got[:, :n], x @ w)
    np.testing.assert_array_equal(got[:, :nout], want[:, :nout])
    assert (got[:, nout:] == 7).all()


@pytest.fixture(scope="module")
def odd_model(tmp_path_factory):
    """Width 40 (K not a multiple of 64), an MLP input of 160, four heads of 10."""
    folder = tmp_path_factory.mktemp("imagegpt")
    return quantize(ImageGPTModel(make_tiny_model(folder, width=40, heads=4, layers=2)).runtime)


@needs_amx
@pytest.mark.parametrize("batch", [1, 5, 16, 21])
def test_amx_engine_steps_and_blocks_match_the_reference(odd_model, batch):
    seqs = random_sequences(batch, 40, seed=batch)
    ref, fast, slow = (ReferenceEngine(odd_model), CpuEngine(odd_model, use_amx=True),
                       CpuEngine(odd_model, use_amx=False))
    assert fast.amx and not slow.amx
    states = [e.start(batch, 40) for e in (ref, fast, slow)]
    for t in range(20):
        want = ref.step(states[0], seqs[:, t])
        np.testing.assert_array_equal(fast.step(states[1], seqs[:, t]), want, f"step {t}")
        np.testing.assert_array_equal(slow.step(states[2], seqs[:, t]), want, f"step {t}")
    block = fast.block(states[1], seqs[:, 20:])  # 20 positions: rows past one 16-row tile
    for t in range(20, 40):
        np.testing.assert_array_equal(block[:, t - 20], ref.step(states[0], seqs[:, t]))


@needs_amx
def test_default_model_logits_are_the_same_on_amx():
    m = quantize(ImageGPTModel().runtime)
    seqs = random_sequences(3, 24, seed=7)
    fast, slow = CpuEngine(m, use_amx=True), CpuEngine(m, use_amx=False)
    h1, l1 = fast.block_logits(fast.start(3), seqs)
    h2, l2 = slow.block_logits(slow.start(3), seqs)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(l1, l2)
    assert instruction_set().startswith("amx-int8 + ")


def test_igc_amx_0_turns_the_path_off(odd_model, monkeypatch):
    monkeypatch.setenv("IGC_AMX", "0")
    assert not amx.usable()
    assert not CpuEngine(odd_model).amx
    assert "amx" not in instruction_set()
    with pytest.raises(ModelError, match="AMX weight products asked for"):
        CpuEngine(odd_model, use_amx=True)


@needs_amx
def test_inputs_past_one_int32_tile_sum_are_summed_in_int64():
    """A low-byte sum of K inputs reaches 2**31 at K = 66,311 (255 x 127 each): the kernel sums
    chunks of 65,536 inputs in int64, so a legal model with a huge MLP keeps the exact
    integers (once it gave -4,303,857,296 for -8,890,000)."""
    k = 70_000
    x = np.full((3, k + 2), -1, np.int16)
    x[1], x[2, : k // 2] = 255, -32767
    w = np.full((k, 20), 127, np.int8)
    w[:, 1] = -127
    wa = amx.pack_weights(w)
    out = np.zeros((3, 32), np.int64)
    kp = wa.shape[0] * 4
    amx.linear(x, k, wa, 32, out, np.zeros((16, kp), np.int8), np.zeros((16, kp), np.uint8),
               np.zeros(1024, np.int32), amx.tile_config())
    np.testing.assert_array_equal(out[:, :20], x[:, :k].astype(np.int64) @ w.astype(np.int64))


@needs_amx
@pytest.mark.slow
def test_a_cached_amx_kernel_compiles_into_a_new_caller_in_a_later_process(tmp_path):
    """numba links a cached kernel's bitcode into a caller it compiles later, in another process:
    the inline assembly must be parsable there too (the parser is set up at import). Once, a
    process that found `amx.linear` cached and compiled `_step` aborted (LLVM ERROR)."""
    import os
    import subprocess
    import sys

    first = """
import numpy as np
from igc.engines import amx
assert amx.usable()  # asks Linux for the tile state, as the engine does before any product
w = np.ones((64, 32), np.int8)
out = np.zeros((1, 32), np.int64)
amx.linear(np.ones((1, 64), np.int16), 64, amx.pack_weights(w), 32, out,
           np.zeros((16, 64), np.int8), np.zeros((16, 64), np.uint8), np.zeros(1024, np.int32),
           amx.tile_config())
assert (out == 64).all()
"""
    second = """
import numpy as np
from igc.engines.integer import ReferenceEngine, quantize
from igc.engines.integer_cpu import CpuEngine
from igc.models.imagegpt import ImageGPTModel
m = quantize(ImageGPTModel().runtime)
ref, cpu = ReferenceEngine(m), CpuEngine(m)
assert cpu.amx
a, b = ref.start(2, 4), cpu.start(2, 4)
ids = np.array([256, 256])
assert np.array_equal(ref.step(a, ids), cpu.step(b, ids))
print("same")
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    for script in (first, second):
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
    assert "same" in done.stdout


def test_what_the_cpu_engines_ran_on_is_recorded(odd_model, monkeypatch):
    """bench and speed JSON name the instructions the cpu engines that ran used, not what the
    environment says at the end."""
    from igc.benchmark.environment import environment
    from igc.engines import integer_cpu

    monkeypatch.setattr(integer_cpu, "KERNELS_USED", set())
    assert "cpu_kernels" not in environment()
    monkeypatch.setenv("IGC_AMX", "0")
    CpuEngine(odd_model)
    monkeypatch.delenv("IGC_AMX")
    assert environment()["cpu_kernels"] == instruction_set(False)
    assert "amx" not in environment()["cpu_kernels"]
