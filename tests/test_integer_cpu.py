"""Numerics 2's CPU engine (igc/engines/integer_cpu.py) against the reference engine: the same
frequencies, bit for bit, at every step, whatever the model's shape, the batch, the instruction
set numba compiles for, torch's thread count or the number of lanes stepping at once."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from helpers import make_tiny_model, smooth_image

from igc.engines import integer
from igc.engines.integer import LIM, ReferenceEngine, quantize
from igc.engines.integer_cpu import CpuEngine, _linear, pack_weights
from igc.errors import ModelError
from igc.models.imagegpt import ImageGPTModel

START = 256


def random_sequences(batch: int, length: int, seed: int) -> np.ndarray:
    """Model inputs: the start token, then random subpixels."""
    seqs = np.random.default_rng(seed).integers(0, 256, (batch, length))
    seqs[:, 0] = START
    return seqs


def assert_same(model, seqs: np.ndarray, engines=None) -> None:
    """Every engine's frequencies equal the reference's at every step of `seqs`."""
    ref = ReferenceEngine(model)
    engines = engines or [CpuEngine(model)]
    b, n = seqs.shape
    ref_state = ref.start(b, n)
    states = [e.start(b, n) for e in engines]
    for t in range(n):
        want = ref.step(ref_state, seqs[:, t])
        assert want.sum(axis=1).tolist() == [1 << 24] * b
        for e, st in zip(engines, states, strict=True):
            got = e.step(st, seqs[:, t])
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, want, err_msg=f"step {t}")


def tiny(tmp_path_factory, **kw):
    folder = tmp_path_factory.mktemp("imagegpt")
    return ImageGPTModel(make_tiny_model(folder, **kw)).runtime


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory):
    """Shapes the engine must not care about: norm_frac 13, 12 and 11 (widths 8, 32, 64), one
    head and several, head sizes odd (3), small (8), above one SIMD group (40), above one
    int32 sum of q . k (160 > 2 * 64), an MLP input above one int32 sum of the weight product
    (640 > 2 * 256)."""
    shapes = {"w8h1": dict(width=8, heads=1, layers=1), "w32h4": dict(width=32, heads=4),
              "w24h8": dict(width=24, heads=8, layers=1), "w80h2": dict(width=80, heads=2),
              "w64h2": dict(width=64, heads=2, layers=1, tile=6),
              "w160h1": dict(width=160, heads=1, layers=1, tile=3)}
    return {k: tiny(tmp_path_factory, seed=i, **kw) for i, (k, kw) in enumerate(shapes.items())}


@pytest.mark.parametrize("name,batch", [("w8h1", 1), ("w32h4", 5), ("w24h8", 3), ("w80h2", 2),
                                        ("w64h2", 1), ("w160h1", 6)])
def test_random_models_match_the_reference_at_every_step(runtimes, name, batch):
    model = quantize(runtimes[name])
    assert_same(model, random_sequences(batch, model.n_positions, seed=batch))


def test_norm_frac_differs_across_the_shapes_tested(runtimes):
    assert {quantize(rt).norm_frac for rt in runtimes.values()} >= {11, 12, 13}


def test_saturating_weights_match_the_reference(tmp_path_factory, monkeypatch):
    """Weights scaled up until the residual stream, attention scores and quick-GELU saturate,
    plus output channels so small that their requantizing shift would pass 62 (they quantize
    to zero: igc.engines.integer.MAX_E)."""
    rt = tiny(tmp_path_factory, width=32, heads=2, seed=7)
    with torch.no_grad():
        for layer in rt.layers:
            layer.c_attn_w.mul_(300.0)
            layer.fc_w.mul_(50.0)
            layer.fc_b[::2].add_(20.0)
            layer.mlp_proj_w.mul_(1e8)
            for j in range(12):  # magnitudes 1e-9 .. 3e-15: shifts around 64
                layer.mlp_proj_w[:, j] = 10.0 ** (-9 - j / 2) * torch.sign(
                    layer.mlp_proj_w[:, j])
        rt.wte.mul_(1e9)
    model = quantize(rt)
    seen = {"lim": False, "shift": set(), "gelu_hi": False, "gelu_lo": False}
    linear, gelu = integer.linear, integer.quick_gelu

    def spy_linear(h, frac, lin):
        out = linear(h, frac, lin)
        seen["lim"] |= bool((np.abs(out) == LIM).any())
        seen["shift"] |= set((lin.e[None, :] + np.asarray(frac).reshape(-1, 1) - 16).ravel())
        return out

    def spy_gelu(f):
        i = f >> (16 - integer.GELU_FRAC)
        seen["gelu_hi"] |= bool((i >= integer.GELU_HALF).any())
        seen["gelu_lo"] |= bool((i < -integer.GELU_HALF).any())
        return gelu(f)

    monkeypatch.setattr(integer, "linear", spy_linear)
    monkeypatch.setattr(integer, "quick_gelu", spy_gelu)
    assert_same(model, random_sequences(3, model.n_positions, seed=3))
    assert np.abs(model.wte).max() == LIM and seen["lim"]
    assert seen["gelu_hi"] and seen["gelu_lo"]
    # the tiniest columns count as zero (scales below 2**-32), so no shift passes 62
    assert max(seen["shift"]) <= 62, sorted(seen["shift"])[-8:]
    assert all((lay.mlp_proj.m[:12] == 0).any() for lay in model.layers)


@pytest.fixture(scope="module")
def default_model():
    return quantize(ImageGPTModel().runtime)


def real_tiles() -> np.ndarray:
    """Three 16×16 tiles of a photograph as model inputs (start token, then 767 subpixels)."""
    from igc.core.tokenizer import SubpixelTokenizer

    try:
        from skimage.data import astronaut

        image = astronaut()[100:116, 180:228]
    except ImportError:
        image = smooth_image(16, 48)
    tokens = SubpixelTokenizer(tile=16).encode(np.ascontiguousarray(image)).tokens
    return np.concatenate([np.full((len(tokens), 1), START), tokens[:, :-1]], axis=1)


def test_default_model_matches_the_reference_on_real_tiles(default_model):
    seqs = real_tiles()
    assert seqs.shape == (3, 768)
    assert_same(default_model, seqs[:, :40])


def test_thread_count_and_lanes_on_threads_do_not_change_a_bit(default_model):
    seqs = random_sequences(6, 24, seed=5)
    eng = CpuEngine(default_model)

    def run(rows: slice) -> list[np.ndarray]:
        st = eng.start(rows.stop - rows.start, 24)
        return [eng.step(st, seqs[rows, t]) for t in range(24)]

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(slice(0, 6))
        torch.set_num_threads(2)
        two = run(slice(0, 6))
    finally:
        torch.set_num_threads(threads)
    with ThreadPoolExecutor(2) as pool:  # two lanes of three rows, stepping concurrently
        lanes = list(pool.map(run, [slice(0, 3), slice(3, 6)]))
    ref = ReferenceEngine(default_model)
    st = ref.start(6, 24)
    for t in range(24):
        want = ref.step(st, seqs[:, t])
        np.testing.assert_array_equal(one[t], want)
        np.testing.assert_array_equal(two[t], want)
        np.testing.assert_array_equal(np.concatenate([lanes[0][t], lanes[1][t]]), want)


def blocks_of(seqs: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """`seqs` cut into consecutive column blocks of `sizes` (repeated until the end)."""
    out, t, i = [], 0, 0
    while t < seqs.shape[1]:
        n = min(sizes[i % len(sizes)], seqs.shape[1] - t)
        out.append(seqs[:, t : t + n])
        t, i = t + n, i + 1
    return out


@pytest.mark.parametrize("name,batch,sizes", [
    ("w32h4", 3, [16]), ("w8h1", 2, [1, 5, 16, 3]), ("w24h8", 1, [7]), ("w80h2", 2, [33, 1]),
    ("w64h2", 2, [2, 9]), ("w160h1", 3, [4])])
def test_a_block_of_steps_gives_each_step_s_frequencies(runtimes, name, batch, sizes):
    """An encoder's block of P known tokens per sequence (all keys stored before any query
    reads) gives exactly the reference's frequencies, logits and head inputs of P steps,
    whatever P and wherever the block starts (inside a key block of 16 or across one)."""
    model = quantize(runtimes[name])
    seqs = random_sequences(batch, model.n_positions, seed=batch + 10)
    ref, eng = ReferenceEngine(model), CpuEngine(model)
    ref_f, ref_l = ref.start(batch, seqs.shape[1]), ref.start(batch, seqs.shape[1])
    st_f, st_l = eng.start(batch, seqs.shape[1]), eng.start(batch, seqs.shape[1])
    for block in blocks_of(seqs, sizes):
        freqs = eng.block(st_f, block)
        hidden, logits = eng.block_logits(st_l, block)
        assert freqs.shape == (batch, block.shape[1], model.vocab)
        for p in range(block.shape[1]):
            np.testing.assert_array_equal(freqs[:, p], ref.step(ref_f, block[:, p]))
            want_h, want_l = ref.step_logits(ref_l, block[:, p])
            np.testing.assert_array_equal(hidden[:, p], want_h)
            np.testing.assert_array_equal(logits[:, p], want_l)


def test_sharp_attention_with_zero_weights_matches_the_reference(tmp_path_factory,
                                                                   monkeypatch):
    """Attention as sharp as the shipped models' (most of their softmax weights are exactly
    zero, scripts/attention_zeros.py): one head of a tiny model sharpened until a fifth of its
    position pairs weigh zero, with nonzero runs after zero gaps, tiny weights (below the split
    of a weight into high and low bits) and, in the other head, runs longer than one int32 sum
    (32 pairs). Every step and block equals the reference."""
    runtime = tiny(tmp_path_factory, width=32, heads=2, layers=2, tile=6, seed=7)
    with torch.no_grad():
        for layer, sharper in zip(runtime.layers, (3000, 300), strict=True):  # head 0's
            layer.c_attn_w[:, :16] *= sharper  # queries and keys
            layer.c_attn_w[:, 32:48] *= sharper
    model = quantize(runtime)
    seen = {"zero": 0, "pairs": 0, "gaps": 0, "long": 0}
    exp2_neg = integer.exp2_neg

    def spy(z):
        e = exp2_neg(z)
        if z.ndim == 2:  # attention, not the head's frequencies
            w = (e >> (integer.EXP_BITS - integer.ATT_BITS)) != 0
            w = np.pad(w, ((0, 0), (0, w.shape[1] % 2))).reshape(len(w), -1, 2).any(axis=2)
            seen["zero"] += int((~w).sum())
            seen["pairs"] += w.size
            for row in w:
                at = np.flatnonzero(row)
                seen["gaps"] += bool((np.diff(at) > 1).any())
                runs = np.diff(np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0])))[::2]
                seen["long"] += bool(runs.size and runs.max() > 32)
        return e

    monkeypatch.setattr(integer, "exp2_neg", spy)
    seqs = random_sequences(3, model.n_positions, seed=3)
    assert_same(model, seqs)
    assert 0.1 < seen["zero"] / seen["pairs"] < 0.5 and seen["gaps"] > 50 and seen["long"] > 50
    ref, eng = ReferenceEngine(model), CpuEngine(model)
    want, st = ref.start(3, seqs.shape[1]), eng.start(3, seqs.shape[1])
    for block in blocks_of(seqs, (1, 40, 17, 50)):
        got = eng.block(st, block)
        for p in range(block.shape[1]):
            np.testing.assert_array_equal(got[:, p], ref.step(want, block[:, p]))


def test_steps_after_a_block_and_blocks_after_steps_agree(default_model):
    """A lane's state moves on the same whether its positions came in blocks or one by one
    (the decoder steps what the encoder may have computed in blocks)."""
    seqs = real_tiles()[:, :70]
    eng = CpuEngine(default_model)
    one, mixed = eng.start(3, 70), eng.start(3, 70)
    want = [eng.step(one, seqs[:, t]) for t in range(70)]
    got = list(eng.block(mixed, seqs[:, :20]).transpose(1, 0, 2))
    got += [eng.step(mixed, seqs[:, t]) for t in range(20, 37)]
    got += list(eng.block(mixed, seqs[:, 37:]).transpose(1, 0, 2))
    for t in range(70):
        np.testing.assert_array_equal(got[t], want[t], err_msg=f"step {t}")


@pytest.mark.parametrize("rows,k,n", [(1, 1, 1), (3, 7, 17), (4, 128, 384), (6, 513, 40),
                                       (5, 1100, 16), (9, 4096, 3), (1, 300, 100),
                                       (2, 600, 70), (19, 130, 66)])
def test_weight_product_is_exact_at_the_extremes(rows, k, n):
    """Rows in eights, fours and singly (four channel blocks at once or one), inputs of odd
    width and over several int32 sums, outputs not a multiple of 16; operands at the extremes
    (+-32767 x +-127) and random."""
    rng = np.random.default_rng(k)
    w = rng.integers(-127, 128, (k, n))
    w[:, 0], w[:, -1] = 127, -127
    x = rng.integers(-32767, 32768, (rows, k))
    x[0] = 32767
    x[-1] = -32767
    packed = pack_weights(w.astype(np.int8))
    xin = np.full((rows, 2 * packed.shape[0] + 2), 12345, np.int16)  # garbage past the width
    xin[:, :k] = x
    out = np.zeros((rows, packed.shape[1] // 2 + 16), np.int64)
    _linear(xin, packed, out)
    np.testing.assert_array_equal(out[:, :n], x @ w)


@pytest.mark.slow
@pytest.mark.parametrize("isa,env", [
    ("generic", {"NUMBA_CPU_NAME": "generic"}),
    ("avx2", {"NUMBA_CPU_NAME": "haswell",
              "NUMBA_CPU_FEATURES": "+64bit,+avx,+avx2,+fma,+sse4.2,+sse4.1,+ssse3,+popcnt"}),
])
def test_other_instruction_sets_match_the_reference(isa, env, tmp_path):
    """The AVX2 intrinsics and the plain vector IR (what other CPUs get) give the same
    integers: compiled in a subprocess for that target, with its own numba cache, where the
    AMX path is off even on a CPU that has it."""
    script = f"""
import numpy as np
from numba.core.registry import cpu_target
from igc.models.imagegpt import ImageGPTModel
from igc.engines.integer import ReferenceEngine, quantize
from igc.engines.integer_cpu import CpuEngine
from igc.engines.simd import target_isa
assert target_isa(cpu_target.target_context) == {isa!r}
m = quantize(ImageGPTModel().runtime)
ref, cpu = ReferenceEngine(m), CpuEngine(m)
assert not cpu.amx  # compiled without AMX: the kernel is a trap, never called
seqs = np.random.default_rng(0).integers(0, 256, (5, 20))
a, b = ref.start(5, 20), cpu.start(5, 20)
assert all(np.array_equal(ref.step(a, seqs[:, t]), cpu.step(b, seqs[:, t])) for t in range(20))
print("same")
"""
    env = {**os.environ, **env, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0 and "same" in done.stdout, done.stderr[-2000:]


def test_errors(runtimes):
    model = quantize(runtimes["w8h1"])
    eng = CpuEngine(model)
    st = eng.start(2, 3)
    with pytest.raises(ModelError, match="batch 2"):
        eng.step(st, np.zeros(3, np.int64))
    with pytest.raises(ModelError, match="token ids"):
        eng.step(st, np.array([0, 257]))
    for _ in range(3):
        eng.step(st, np.zeros(2, np.int64))
    with pytest.raises(ModelError, match="context"):
        eng.step(st, np.zeros(2, np.int64))
    with pytest.raises(ModelError, match="context"):  # a block past the end: refused whole
        eng.block(eng.start(2, 3), np.zeros((2, 4), np.int64))
    model.head.w[0, 0] = 128
    with pytest.raises(ModelError, match="numerics 2"):
        CpuEngine(model)
