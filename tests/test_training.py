"""Training package: HF-equivalence of the model, learning, and exact resume.

Tiny configs (width 32, 2 layers, 4×4 tiles) keep the whole file to a few seconds on one core.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from igc.errors import UsageError
from igc.training.data import Sampler, TileSource, load_training
from igc.training.model import ImageGPT, ModelConfig, export_pretrained, tokens_from_tiles
from igc.training.trainer import Trainer, TrainSettings, lr_at

TINY = ModelConfig(width=32, layers=2, heads=2, tile=4)


def _synthetic(n: int = 64, side: int = 8, seed: int = 0) -> np.ndarray:
    """Predictable images: one of four base colours plus a small horizontal ramp."""
    rng = np.random.default_rng(seed)
    base = rng.choice([10, 60, 120, 200], (n, 1, 1, 3))
    ramp = np.arange(side)[None, None, :, None] * 4
    return np.broadcast_to(base + ramp, (n, side, side, 3)).astype(np.uint8)


def _settings(tmp_path, **kw) -> TrainSettings:
    base = dict(
        model=TINY,
        out=str(tmp_path / "run"),
        steps=6,
        batch=8,
        warmup=2,
        threads=1,
        device="cpu",
        precision="fp32",
        eval_every=1000,
        eval_minutes=1000.0,
    )
    base.update(kw)
    return TrainSettings(**base)


def _trainer(tmp_path, resume=False, **kw) -> Trainer:
    src = TileSource(tile=4, stacks=[_synthetic()])
    return Trainer(
        _settings(tmp_path, **kw),
        source=src,
        val_tiles=_synthetic(16, 4, seed=1),
        resume=resume,
        quiet=True,
    )


def test_model_matches_hf(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = ImageGPT(TINY).eval()
    export_pretrained(model, TINY.hf_config(), tmp_path / "export")
    hf, info = transformers.ImageGPTForCausalImageModeling.from_pretrained(
        tmp_path / "export", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf.eval()
    tiles = torch.randint(0, 256, (3, 4, 4, 3), dtype=torch.uint8)
    ids, tgt = tokens_from_tiles(tiles)
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    # float32 on the same machine: differences are rounding only (measured ~1e-7).
    assert (ours - theirs).abs().max().item() < 1e-4
    bits = [
        torch.nn.functional.cross_entropy(x.reshape(-1, 256), tgt.reshape(-1)).item() / math.log(2)
        for x in (ours, theirs)
    ]
    assert abs(bits[0] - bits[1]) / bits[1] < 1e-3


def test_tokenization_order():
    tiles = torch.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3).remainder(256).to(torch.uint8)
    ids, tgt = tokens_from_tiles(tiles)
    assert ids.shape == tgt.shape == (2, 48)
    assert ids[0, 0] == 256 and torch.equal(ids[:, 1:], tgt[:, :-1])
    assert tgt[0, :6].tolist() == [0, 1, 2, 3, 4, 5]  # R,G,B of pixel (0,0), then pixel (0,1)


def test_training_reduces_loss(tmp_path):
    tr = _trainer(tmp_path, steps=40, lr=3e-3)
    losses = [tr.train_step() for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3])


def test_resume_matches_uninterrupted(tmp_path):
    straight = _trainer(tmp_path / "a")
    for _ in range(6):
        straight.train_step()

    first = _trainer(tmp_path / "b")
    for _ in range(3):
        first.train_step()
    first.save_checkpoint()
    second = _trainer(tmp_path / "b", resume=True)
    assert second.step == 3 and second.tokens == first.tokens
    for _ in range(3):
        second.train_step()

    assert second.step == straight.step == 6
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k
    sa, sb = straight.opt.state_dict()["state"], second.opt.state_dict()["state"]
    for i in sa:
        assert torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"])


def test_run_logs_and_exports(tmp_path):
    tr = _trainer(tmp_path, steps=4, eval_every=2)
    best = tr.run()
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 2, 4]
    assert all(r["val_bpsp"] > 0 for r in records)
    meta = json.loads((run / "best" / "training.json").read_text())
    assert meta["val_bpsp"] == pytest.approx(best)
    assert (run / "best" / "model.safetensors").exists() and (run / "checkpoint.pt").exists()
    # --resume after the end: nothing left to do, the step count is kept.
    again = _trainer(tmp_path, resume=True, steps=4, eval_every=2)
    assert again.step == 4


def test_schedule_warms_up_and_decays():
    s = TrainSettings(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(s, 0, 0) == pytest.approx(0.1)
    assert lr_at(s, 9, 0) == pytest.approx(1.0)
    # The cosine spans the whole budget, warmup included, so it ends exactly at the budget.
    assert lr_at(s, 10, 0) < 1.0
    assert lr_at(s, 50, 0) == pytest.approx(0.55)
    assert lr_at(s, 100, 0) == pytest.approx(0.1)
    s = TrainSettings(minutes=10, warmup=0, lr=1.0, min_lr_ratio=0.0)
    assert lr_at(s, 5, 300) == pytest.approx(0.5)


def test_sampler_shapes_and_flips():
    src = TileSource(tile=4, photos=[np.zeros((10, 12, 3), np.uint8)], stacks=[_synthetic()])
    batch = Sampler(src, np.random.default_rng(0), small_fraction=0.5).batch(32)
    assert batch.shape == (32, 4, 4, 3) and batch.dtype == np.uint8


def test_evaluation_sets_refused(tmp_path):
    with pytest.raises(UsageError, match="evaluation"):
        load_training([tmp_path / "kodak"], tile=4)
    with pytest.raises(UsageError, match="not found"):
        load_training([tmp_path / "missing"], tile=4)


def test_budget_required(tmp_path):
    with pytest.raises(UsageError):
        _trainer(tmp_path, steps=None)
