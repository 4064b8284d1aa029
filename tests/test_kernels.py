"""The fused step's kernels (igc/engines/kernels.py) and the numerics a file records.

Tolerances: float32 unit roundoff u = 2**-24. Each kernel is compared with a float64 reference
computed from the same inputs, so what is left is its own rounding: a few u per operation for
elementwise work, and for a sum of n terms at most n·u times the sum of their magnitudes.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch

from igc import get_compressor
from igc.core import container
from igc.engines import kernels as K
from igc.errors import FormatError

U = 2.0**-24


def test_exp_is_within_two_ulp_and_flushes_outside_the_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-87, 88, 200_000), rng.uniform(-1, 1, 100_000),
                        [0.0, -86.99, 87.99, -1e-30]]).astype(np.float32)
    got = x.copy()
    K.exp_(got, len(got), np.float32(0), np.empty_like(got))
    ref = np.exp(x.astype(np.float64))
    assert (np.abs(got - ref) / ref).max() <= 2 * 2.0**-23  # two float32 ulps at worst
    assert got[x == 0][0] == 1.0
    low = np.array([-87.5, -200.0, -np.inf], np.float32)
    K.exp_(low, 3, np.float32(0), np.empty(3, np.float32))
    assert (low == 0).all()
    shifted = np.array([3.0, 5.0], np.float32)
    K.exp_(shifted, 2, np.float32(5.0), np.empty(2, np.float32))
    assert shifted[1] == 1.0 and abs(shifted[0] - np.exp(-2.0)) <= 2 * 2.0**-23 * np.exp(-2.0)


def test_bfloat16_rounding_matches_torch_and_never_overflows():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(50_000) * 10.0 ** rng.integers(-30, 30, 50_000),
                        [0.0, -0.0, 1.0, 1.00390625, 1.01171875, 3.0e38, 3.395e38, -3.4e38, 1e-40]]
                       ).astype(np.float32)
    ours = np.array([K.to_bfloat16(v) for v in x], np.uint16)
    theirs = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    finite = np.abs(x) < 3.3895e38  # torch rounds the last two up to infinity
    np.testing.assert_array_equal(ours[finite], theirs[finite])
    assert list(ours[~finite]) == [0x7F7F, 0xFF7F]  # the largest finite bfloat16 of each sign


def _bf16(a: np.ndarray) -> np.ndarray:
    return torch.from_numpy(a).to(torch.bfloat16).float().numpy()


@pytest.mark.parametrize("pos", [0, 1, 63, 64, 200])
def test_attend_is_softmax_attention_over_the_rounded_cache(pos):
    rng = np.random.default_rng(pos)
    b, h, d, length = 3, 2, 8, 256
    keys = np.zeros((b * h, length // K.BLOCK, d, K.BLOCK), np.uint16)
    values = np.zeros((b * h, length, d), np.uint16)
    scratch = np.zeros(2 * length, np.float32)
    out = np.zeros((b, h * d), np.float32)
    steps = [rng.standard_normal((b, 3, h, d)).astype(np.float32) * 3 for _ in range(pos + 1)]
    for t, qkv in enumerate(steps):
        K.attend(qkv, keys, values, t, out, scratch)
    k = _bf16(np.stack([s[:, 1] for s in steps], axis=2)).astype(np.float64)  # (b, h, n, d)
    v = _bf16(np.stack([s[:, 2] for s in steps], axis=2)).astype(np.float64)
    q = steps[-1][:, 0].astype(np.float64)  # (b, h, d)
    scores = np.einsum("bhd,bhnd->bhn", q, k)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    ref = np.einsum("bhn,bhnd->bhd", p / p.sum(-1, keepdims=True), v).reshape(b, h * d)
    # scores: d-term sums (d·u of their magnitudes) feed exp; the output: (pos+1)-term sums
    scale = np.abs(np.einsum("bhd,bhnd->bhn", np.abs(q), np.abs(k))).max()
    tol = (d * scale + 2 * (pos + 1) + 8) * U * np.abs(v).max()
    assert np.abs(out - ref).max() <= tol


def test_norm_gelu_and_softmax_match_their_definitions():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 48)).astype(np.float32) * 4
    w = rng.standard_normal(48).astype(np.float32)
    out = np.empty_like(x)
    K.rms_norm(x, w, np.float32(1e-5), out)
    x64 = x.astype(np.float64)
    ref = x64 / np.sqrt((x64**2).mean(-1, keepdims=True) + 1e-5) * w
    assert np.abs(out - ref).max() <= 64 * U * np.abs(ref).max()

    h = x.copy()
    K.quick_gelu_(h, np.empty(2 * 48, np.float32))
    ref = x64 / (1 + np.exp(-1.702 * x64))
    assert np.abs(h - ref).max() <= 8 * U * np.abs(x64).max()

    probs = np.empty((5, 48), np.float64)
    K.softmax(x, probs, np.empty(96, np.float32))
    e = np.exp(x64 - x64.max(-1, keepdims=True))
    assert np.abs(probs - e / e.sum(-1, keepdims=True)).max() <= 64 * U
    assert (probs > 0).all() and np.abs(probs.sum(-1) - 1).max() <= 64 * U


# -- the numerics a file records ---------------------------------------------------------------
def test_new_files_record_the_integer_numerics_and_old_ones_still_decode(tiny_model, rng,
                                                                         monkeypatch):
    image = rng.integers(0, 256, (9, 10, 3), dtype=np.uint8)
    new = get_compressor("imagegpt", model=tiny_model).compress(image)
    assert container.unpack(new)[0].numerics == 2
    old_comp = get_compressor("imagegpt", model=tiny_model)
    with monkeypatch.context() as m:  # loaded models are shared: undo before the decode
        m.setattr(old_comp.codec.model, "numerics", 1, raising=False)  # the fused float step
        fused = old_comp.compress(image)
        m.setattr(old_comp.codec.model, "numerics", 0, raising=False)  # as version 2 files
        header, payload = container.unpack(old_comp.compress(image))
    assert container.unpack(fused)[0].numerics == 1
    v2 = container.pack(dataclasses.replace(header, version=2), payload)
    assert container.unpack(v2)[0].numerics == 0
    fresh = get_compressor("imagegpt", model=tiny_model)
    np.testing.assert_array_equal(fresh.decompress(v2), image)
    np.testing.assert_array_equal(fresh.decompress(fused), image)
    np.testing.assert_array_equal(fresh.decompress(new), image)


def test_unknown_numerics_is_a_clear_error(tiny_model, rng):
    comp = get_compressor("imagegpt", model=tiny_model)
    header, payload = container.unpack(comp.compress(rng.integers(0, 256, (8, 8, 3), np.uint8)))
    bad = container.pack(dataclasses.replace(header, numerics=9), payload)
    with pytest.raises(FormatError, match="numerics 9"):
        comp.decompress(bad)


def test_a_backend_without_the_fused_step_refuses_its_files(tiny_model, rng):
    from igc.codec.neural import NeuralCodec
    from igc.coders.range import RangeCoder
    from igc.models.hf_backend import HFImageGPTModel

    data = get_compressor("imagegpt", model=tiny_model).compress(
        rng.integers(0, 256, (8, 8, 3), np.uint8))
    with pytest.raises(FormatError, match="numerics 2"):
        NeuralCodec(HFImageGPTModel(tiny_model), RangeCoder()).decode(data)


def test_missing_numba_is_a_clear_error(tiny_model, monkeypatch):
    from igc.errors import ModelError
    from igc.models.imagegpt import ImageGPTModel

    model = ImageGPTModel(tiny_model)
    import igc.engines

    monkeypatch.delattr(igc.engines, "kernels", raising=False)
    monkeypatch.setitem(sys.modules, "igc.engines.kernels", None)  # as if numba were absent
    with pytest.raises(ModelError, match="needs numba"):
        model.start(2, numerics=1)
