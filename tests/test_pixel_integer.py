"""Numerics 2 for pixel models (igc/engines/pixel_integer.py): the reference engine computes the
ImageGPT rules on a pixel model's body and heads. A pixel model warm-started from the shipped
subpixel model (igc.training.model.pixel_from_subpixel) has that model's body and head, which
pins the body and R's head to the subpixel reference engine bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import pixel_trainer, ramp_images, smooth_image

from igc.engines import amx
from igc.engines import integer as I
from igc.engines.pixel_integer import PixelReferenceEngine, quantize_pixel
from igc.errors import ModelError
from igc.models.network import ModelConfig, tokens_from_tiles
from igc.training.model import load_pretrained, pixel_from_subpixel

PIXEL = ModelConfig(arch="pixel")
needs_amx = pytest.mark.skipif(not amx.usable(), reason="no AMX on this CPU (or IGC_AMX=0)")


@pytest.fixture(scope="module")
def warm() -> tuple[dict, dict]:
    """(the shipped default's state, a pixel model's state warm-started from it)."""
    _, state, _ = load_pretrained("igc-rgb16-v3")
    return state, pixel_from_subpixel(state, PIXEL)


def _tiles(n: int) -> np.ndarray:
    img = smooth_image(16, 16 * n)
    return np.ascontiguousarray(img.reshape(16, n, 16, 3).transpose(1, 0, 2, 3))


def test_body_and_r_head_are_the_subpixel_models_integers(warm):
    """At each tile's first pixel a warm-started pixel model reads what the subpixel model reads
    at position 0 (the start symbol), through the same integer body and head: the same
    frequencies exactly, for every row of a batch."""
    from igc.engines.runtime import ImageGPTRuntime
    from igc.models.folders import load_checked, resolve

    config, tensors = load_checked(resolve("igc-rgb16-v3")[1])
    subpixel = I.ReferenceEngine(I.quantize(ImageGPTRuntime(config, tensors)))
    pixel = PixelReferenceEngine(quantize_pixel(warm[1], PIXEL))
    start = np.full(4, 256)
    assert np.array_equal(pixel.step(pixel.start(4), start), subpixel.step(subpixel.start(4), start))


def test_heads_that_add_nothing_give_r_heads_frequencies(warm):
    """G's and B's heads with zero embeddings and a zero MLP output compute R's head from the same
    stream: their integer frequencies equal R's exactly at every pixel."""
    state = dict(warm[1])
    for c in (1, 2):
        for k in range(c):
            state[f"heads.{c}.embs.{k}.weight"] = torch.zeros_like(state[f"heads.{c}.embs.{k}.weight"])
    engine = PixelReferenceEngine(quantize_pixel(state, PIXEL))
    ids, _ = tokens_from_tiles(torch.from_numpy(_tiles(2)))
    st = engine.start(2)
    for p in range(30):
        f = engine.step(st, ids[:, p].numpy())
        if p % 3 == 0:
            r = f
        else:
            assert np.array_equal(f, r), p


def test_integer_code_length_is_within_half_a_percent_of_float(tmp_path):
    """The subpixel model's bound (test_integer.py), on a tiny pixel model trained until it
    predicts its images well (about 1.7 bits a subpixel): every head's integer path, the MLPs
    of G's and B's included, tracks the float model (measured 0.02%)."""
    trainer = pixel_trainer(tmp_path / "run", steps=150)
    for _ in range(150):
        trainer.train_step()
    model = trainer.model.eval()
    ids, tgt = tokens_from_tiles(torch.from_numpy(ramp_images(8, 4, seed=5)))
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).double(), -1)
    fbits = -logp.gather(-1, tgt[..., None]).sum().item() / math.log(2)
    assert fbits / tgt.numel() < 2.5  # trained: far from a uniform model's 8 bits
    engine = PixelReferenceEngine(quantize_pixel(model.state_dict(), model.cfg))
    st, ibits = engine.start(8), 0.0
    for p in range(ids.shape[1]):
        f = engine.step(st, ids[:, p].numpy())
        ibits -= np.log2(f[np.arange(8), tgt[:, p].numpy()] / 2.0 ** 24).sum()
    assert abs(ibits / fbits - 1) < 0.005


def test_frequencies_are_valid_and_steps_are_checked(warm):
    engine = PixelReferenceEngine(quantize_pixel(warm[1], PIXEL))
    st = engine.start(2, length=6)
    for p, ids in enumerate([[256, 256], [3, 250], [7, 0], [9, 9], [1, 2], [3, 4]]):
        f = engine.step(st, np.array(ids))
        assert f.shape == (2, 256) and (f >= 1).all() and (f.sum(-1) == 1 << 24).all(), p
    with pytest.raises(ModelError, match="sequence longer"):
        engine.step(st, np.array([0, 0]))
    with pytest.raises(ModelError, match="step got 3 tokens for a cache of batch 2"):
        engine.step(engine.start(2), np.array([256, 256, 256]))
    with pytest.raises(ModelError, match="sequence longer"):
        engine.start(1, length=769)


def _same_frequencies(state: dict, cfg, tiles: np.ndarray, steps: int,
                     use_amx: bool | None = None) -> None:
    from igc.engines.pixel_cpu import PixelCpuEngine

    model = quantize_pixel(state, cfg)
    reference, cpu = PixelReferenceEngine(model), PixelCpuEngine(model, use_amx)
    ids, _ = tokens_from_tiles(torch.from_numpy(tiles))
    a, b = reference.start(len(tiles)), cpu.start(len(tiles))
    c, d = reference.start(len(tiles)), cpu.start(len(tiles))
    freqs, hidden, logits = [], [], []
    for p in range(steps):
        freqs.append(reference.step(a, ids[:, p].numpy()))
        assert np.array_equal(freqs[-1], cpu.step(b, ids[:, p].numpy())), p
        # what an adaptation reads: the head's input and its logits
        want = reference.step_logits(c, ids[:, p].numpy())
        for x, y in zip(want, cpu.step_logits(d, ids[:, p].numpy()), strict=True):
            assert np.array_equal(x, y), p
        hidden.append(want[0])
        logits.append(want[1])
    # an encoder's blocks, of sizes that start and end at every channel: the same integers
    freqs, hidden, logits = (np.stack(v, axis=1) for v in (freqs, hidden, logits))
    e, f = cpu.start(len(tiles)), cpu.start(len(tiles))
    p, sizes = 0, iter([1, 2, 4, 3, 5, 16, 7, 6, 48] * steps)
    while p < steps:
        q = min(p + next(sizes), steps)
        block = ids[:, p:q].numpy()
        assert np.array_equal(cpu.block(e, block), freqs[:, p:q]), (p, q)
        got = cpu.block_logits(f, block)
        assert np.array_equal(got[0], hidden[:, p:q]) and np.array_equal(got[1], logits[:, p:q])
        p = q


@pytest.mark.parametrize("use_amx", [False, pytest.param(True, marks=needs_amx)])
def test_cpu_engine_matches_the_reference_on_a_trained_model(tmp_path, use_amx):
    """Every step of whole tiles, a tiny pixel model trained until its heads matter, with the
    body's products on the AMX units and off; batches of 5 and 1."""
    trainer = pixel_trainer(tmp_path / "run", steps=60)
    for _ in range(60):
        trainer.train_step()
    for tiles in (ramp_images(5, 4, seed=3), ramp_images(1, 4, seed=4)):
        _same_frequencies(trainer.model.state_dict(), trainer.model.cfg, tiles, 48, use_amx)


def test_cpu_engine_matches_the_reference_at_the_shipped_width(warm):
    """The default body's width, 512-wide MLPs in G's and B's heads (made to matter), 10
    pixels of three photo-like tiles."""
    state = dict(warm[1])
    gen = torch.Generator().manual_seed(0)
    for key in state:
        if key.startswith(("heads.1.", "heads.2.")) and not key.endswith("ln.weight"):
            state[key] = state[key] + 0.05 * torch.randn(state[key].shape, generator=gen)
    _same_frequencies(state, PIXEL, _tiles(3), 30)


def test_cpu_engine_checks_its_steps(warm):
    from igc.engines.pixel_cpu import PixelCpuEngine

    engine = PixelCpuEngine(quantize_pixel(warm[1], PIXEL))
    assert engine.amx == amx.usable()  # what a report names the engine's instructions by
    with pytest.raises(ModelError, match="step got 3 tokens for a cache of batch 2"):
        engine.step(engine.start(2), np.array([256, 256, 256]))
    for each in (engine, PixelReferenceEngine(quantize_pixel(warm[1], PIXEL))):
        for bad in (np.full((1, 1), 256), np.int64(256), np.array([256.0])):
            with pytest.raises(ModelError, match="one integer token per sequence"):
                each.step(each.start(1), bad)
    st = engine.start(1, length=3)
    for ids in ([256], [5], [6]):
        engine.step(st, np.array(ids))
    with pytest.raises(ModelError, match="sequence longer"):
        engine.step(st, np.array([7]))
    for each in (engine, PixelReferenceEngine(quantize_pixel(warm[1], PIXEL))):
        st = each.start(1)
        each.step(st, np.array([256]))
        with pytest.raises(ModelError, match=r"token ids must lie in \[0, 256\) at this step"):
            each.step(st, np.array([256]))  # G's head reads R: a value, not the start symbol
        with pytest.raises(ModelError, match=r"token ids must lie in \[0, 256\)"):
            each.step(st, np.array([-1]))


def test_every_norm_gain_reaches_the_integer_logits(tmp_path):
    """Each norm's gain drawn from [0.5, 2] (trained gains stay near 1, which would hide a gain
    left out of a fold): at every step each head's Q16 logits are the float model's times
    log2(e) to within 0.1 (measured 0.019), where a gain left out moves logits of this model's
    size (up to about 5) by far more."""
    from igc.engines.integer import LOG2E

    trainer = pixel_trainer(tmp_path / "run", steps=60)
    for _ in range(60):
        trainer.train_step()
    model = trainer.model.eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[-2].startswith("ln"):
                p.copy_(0.5 + 1.5 * torch.rand(p.shape, generator=gen))
    ids, _ = tokens_from_tiles(torch.from_numpy(ramp_images(4, 4, seed=3)))
    with torch.no_grad():
        expected = model(ids).double().numpy() * LOG2E
    engine = PixelReferenceEngine(quantize_pixel(model.state_dict(), model.cfg))
    state = engine.start(4)
    for p in range(ids.shape[1]):
        hidden, logits = engine.step_logits(state, ids[:, p].numpy())
        assert hidden.shape == (4, 32) and np.abs(hidden).max() <= I.ACT_MAX
        assert np.abs(logits / 65536.0 - expected[:, p]).max() < 0.1, p


def _torch_matches_the_reference(state: dict, cfg, tiles: np.ndarray, steps: int,
                                 device: str, graph: bool | None = None) -> None:
    """The torch engine's frequencies and (head input, logits) at every step are the
    reference's."""
    from igc.engines.pixel_torch import PixelTorchEngine

    model = quantize_pixel(state, cfg)
    reference = PixelReferenceEngine(model)
    engine = PixelTorchEngine(model, device=device, graph=graph, span_step=4)
    ids, _ = tokens_from_tiles(torch.from_numpy(tiles))
    a, b = reference.start(len(tiles)), engine.start(len(tiles))
    c, d = reference.start(len(tiles)), engine.start(len(tiles))
    for p in range(steps):
        x = ids[:, p].numpy()
        assert np.array_equal(reference.step(a, x), engine.step(b, x)), p
        want, got = reference.step_logits(c, x), engine.step_logits(d, x)
        for u, v in zip(want, got, strict=True):
            assert u.dtype == v.dtype == np.int64 and np.array_equal(u, v), p


def test_torch_engine_matches_the_reference_on_a_trained_model(tmp_path):
    """What the cuda engine computes, on torch's CPU here: every step of whole tiles (a
    attended span that grows by 4 pixels at a time), batches of 5 and 1."""
    trainer = pixel_trainer(tmp_path / "run", steps=60)
    for _ in range(60):
        trainer.train_step()
    for tiles in (ramp_images(5, 4, seed=3), ramp_images(1, 4, seed=4)):
        _torch_matches_the_reference(trainer.model.state_dict(), trainer.model.cfg, tiles,
                                     48, "cpu")


def test_torch_engine_matches_the_reference_at_the_shipped_width(warm):
    state = dict(warm[1])
    gen = torch.Generator().manual_seed(0)
    for key in state:
        if key.startswith(("heads.1.", "heads.2.")) and not key.endswith("ln.weight"):
            state[key] = state[key] + 0.05 * torch.randn(state[key].shape, generator=gen)
    _torch_matches_the_reference(state, PIXEL, _tiles(3), 30, "cpu")


def test_a_reset_torch_state_steps_new_sequences(warm):
    from igc.engines.pixel_torch import PixelTorchEngine

    model = quantize_pixel(warm[1], PIXEL)
    engine, reference = PixelTorchEngine(model, device="cpu"), PixelReferenceEngine(model)
    ids, _ = tokens_from_tiles(torch.from_numpy(_tiles(2)))
    ids = ids.numpy()
    st = engine.start(1)
    for p in range(10):  # another sequence first, left mid-pixel
        engine.step(st, ids[1:, p])
    engine.reset(st)
    ref = reference.start(1)
    for p in range(12):
        assert np.array_equal(engine.step(st, ids[:1, p]), reference.step(ref, ids[:1, p])), p


def test_torch_engine_checks_its_steps(warm):
    from igc.engines.pixel_torch import PixelTorchEngine

    engine = PixelTorchEngine(quantize_pixel(warm[1], PIXEL), device="cpu")
    with pytest.raises(ModelError, match="step got 3 tokens for a cache of batch 2"):
        engine.step(engine.start(2), np.array([256, 256, 256]))
    for bad in (np.full((1, 1), 256), np.int64(256), np.array([256.0])):
        with pytest.raises(ModelError, match="one integer token per sequence"):
            engine.step(engine.start(1), bad)
    st = engine.start(1, length=3)
    for ids in ([256], [5], [6]):
        engine.step(st, np.array(ids))
    with pytest.raises(ModelError, match="sequence longer"):
        engine.step(st, np.array([7]))
    with pytest.raises(ModelError, match="sequence longer"):
        engine.start(1, length=769)
    st = engine.start(1)
    engine.step(st, np.array([256]))
    with pytest.raises(ModelError, match=r"token ids must lie in \[0, 256\) at this step"):
        engine.step(st, np.array([256]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("graph", [False, True])
def test_cuda_engine_matches_the_reference(tmp_path, graph):
    trainer = pixel_trainer(tmp_path / "run", steps=30)
    for _ in range(30):
        trainer.train_step()
    _torch_matches_the_reference(trainer.model.state_dict(), trainer.model.cfg,
                                 ramp_images(5, 4, seed=3), 48, "cuda", graph)


def test_cpu_steps_and_blocks_mixed_on_one_state_agree(tmp_path):
    """A pixel lane's state moves on the same whether its positions came in blocks or one by
    one, in any mix, ending mid-pixel either way (a decoder steps; an encoder may take blocks
    then steps): frequencies and what the adaptation reads, against the reference's steps."""
    from igc.engines.pixel_cpu import PixelCpuEngine

    trainer = pixel_trainer(tmp_path / "run", steps=40)
    for _ in range(40):
        trainer.train_step()
    model = quantize_pixel(trainer.model.state_dict(), trainer.model.cfg)
    ids, _ = tokens_from_tiles(torch.from_numpy(ramp_images(3, 4, seed=7)))
    ids = ids.numpy()
    reference, cpu = PixelReferenceEngine(model), PixelCpuEngine(model)
    ref = reference.start(3)
    want = [reference.step_logits(ref, ids[:, t]) for t in range(ids.shape[1])]
    for plan in ([("b", 5), ("s", 4), ("b", 7), ("s", 1), ("b", 31)],
                 [("s", 2), ("b", 1), ("s", 3), ("b", 12), ("s", 30)]):
        st, t = cpu.start(3), 0
        for kind, n in plan:
            if kind == "b":
                hidden, logits = cpu.block_logits(st, ids[:, t : t + n])
                got = [(hidden[:, i], logits[:, i]) for i in range(n)]
            else:
                got = [cpu.step_logits(st, ids[:, t + i]) for i in range(n)]
            for i, (h, z) in enumerate(got):
                assert np.array_equal(h, want[t + i][0]), (plan, t + i)
                assert np.array_equal(z, want[t + i][1]), (plan, t + i)
            t += n
        assert t == ids.shape[1] == 48
