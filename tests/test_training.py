"""Training package: HF-equivalence of the model, learning, and exact resume.

Tiny configs (width 32, 2 layers, 4×4 tiles) keep the whole file to a few seconds on one core.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from igc.errors import UsageError
from igc.training.data import Sampler, TileSource, load_training, load_validation
from igc.training.model import (
    ImageGPT,
    ModelConfig,
    export_pretrained,
    grow_layers,
    load_pretrained,
    tokens_from_tiles,
)
from igc.training.trainer import (
    Trainer,
    TrainSettings,
    evaluate,
    lr_at,
    position_weights,
    training_loss,
)

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
    losses = [tr.train_step().item() for _ in range(40)]
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
    # the schedule's end is exported beside the best validation, with the last validation
    last = json.loads((run / "last" / "training.json").read_text())
    assert last["step"] == 4 and last["val_bpsp"] == pytest.approx(records[-1]["val_bpsp"])
    assert (run / "last" / "model.safetensors").exists()
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


def _windows(image: np.ndarray, t: int, step: int) -> set[bytes]:
    """Every t×t window of `image` at positions that are multiples of `step`, and its mirror."""
    out = set()
    for y in range(0, image.shape[0] - t + 1, step):
        for x in range(0, image.shape[1] - t + 1, step):
            w = image[y : y + t, x : x + t]
            out |= {w.tobytes(), w[:, ::-1].tobytes()}
    return out


def test_sampler_cuts_real_windows_from_every_source():
    """Each tile is a window of a photo (any position) or of a small image (tile-aligned, as
    the benchmark cuts them), mirrored or not; the small-image share is exact."""
    rng = np.random.default_rng(5)
    photos = [rng.integers(0, 128, (h, w, 3), dtype=np.uint8) for h, w in [(9, 13), (4, 4), (20, 7)]]
    stacks = [rng.integers(128, 256, (5, 8, 12, 3), dtype=np.uint8),
              rng.integers(128, 256, (3, 4, 8, 3), dtype=np.uint8)]
    photo_windows = set().union(*(_windows(p, 4, 1) for p in photos))
    small_windows = set().union(*(_windows(im, 4, 4) for st in stacks for im in st))
    src = TileSource(tile=4, photos=[p.copy() for p in photos], stacks=[s.copy() for s in stacks])
    sampler = Sampler(src, np.random.default_rng(0), small_fraction=0.25)
    assert all(np.shares_memory(p, sampler._flat) for p in src.photos + src.stacks)
    batch = sampler.batch(2000)
    n_small = 500
    assert all(t.tobytes() in small_windows for t in batch[:n_small])
    assert all(t.tobytes() in photo_windows for t in batch[n_small:])
    # mirrored tiles occur about half the time (a window equal to its mirror counts as both)
    unflipped = set().union(*({p[y : y + 4, x : x + 4].tobytes()
                               for y in range(p.shape[0] - 3) for x in range(p.shape[1] - 3)}
                              for p in photos))
    mirrored_only = sum(t.tobytes() not in unflipped for t in batch[n_small:])
    assert 650 < mirrored_only < 850  # binomial(1500, 1/2): mean 750, sd 19.4
    # photos in proportion to their tile positions: the 20×7 photo has 68 of 129 positions
    tall = _windows(photos[2], 4, 1) - _windows(photos[0], 4, 1) - _windows(photos[1], 4, 1)
    share = np.mean([t.tobytes() in tall for t in batch[n_small:]])
    assert abs(share - 68 / 129) < 0.05  # sd of a 1500-draw share is 0.013
    again = Sampler(TileSource(tile=4, photos=[p.copy() for p in photos],
                               stacks=[s.copy() for s in stacks]), np.random.default_rng(0))
    assert np.array_equal(again.batch(2000), batch)


def _export_tiny(tmp_path) -> str:
    tr = _trainer(tmp_path / "donor", steps=3, eval_every=100)
    tr.run()
    return str(tmp_path / "donor" / "run" / "best")


def test_init_from_starts_from_the_exported_weights(tmp_path):
    donor = _export_tiny(tmp_path)
    donor_meta = json.loads((Path(donor) / "training.json").read_text())
    tr = _trainer(tmp_path / "warm", steps=2, init_from=donor, lr=1e-3)
    assert tr.step == 0 and tr.tokens == 0 and not tr.opt.state  # fresh optimizer and counters
    from safetensors.torch import load_file

    for k, v in load_file(Path(donor) / "model.safetensors").items():
        assert torch.equal(tr.model.state_dict()[k], v), k
    tr.run()
    records = [json.loads(line) for line in (tmp_path / "warm" / "run" / "log.jsonl").open()]
    # step 0 validates the donor's weights on the same tiles: the donor's own figure
    assert records[0]["step"] == 0 and records[0]["val_bpsp"] == pytest.approx(
        donor_meta["val_bpsp"], abs=1e-5)
    from igc.models.imagegpt import fingerprint_of, read_tensors

    meta = json.loads((tmp_path / "warm" / "run" / "best" / "training.json").read_text())
    assert meta["init_from"]["fingerprint"] == fingerprint_of(read_tensors(Path(donor)))
    # resuming the warm-started run keeps its provenance
    again = _trainer(tmp_path / "warm", resume=True, steps=2, init_from=donor)
    assert again.init_provenance == meta["init_from"]


def test_grown_model_predicts_what_its_donor_does_then_learns(tmp_path, tiny_model):
    """Appended blocks start as the identity: the grown model's logits are the donor's exactly
    (the residual adds zeros), and its first step moves the new blocks' projections off zero."""
    cfg, state, _ = load_pretrained(tiny_model)
    grown_cfg, grown_state = grow_layers(cfg, state, 2, seed=3)
    assert grown_cfg == ModelConfig(width=32, layers=4, heads=4, tile=4)
    donor, grown = ImageGPT(cfg).eval(), ImageGPT(grown_cfg).eval()
    donor.load_state_dict(state)
    grown.load_state_dict(grown_state)
    ids, _ = tokens_from_tiles(torch.randint(0, 256, (3, 4, 4, 3), dtype=torch.uint8))
    with torch.no_grad():
        assert torch.equal(donor(ids), grown(ids))
    assert grown_state["transformer.h.3.attn.c_attn.weight"].std() > 0.01  # fresh, not zero
    assert not grown_state["transformer.h.2.mlp.c_proj.weight"].any()

    tr = _trainer(tmp_path, steps=1, init_from=tiny_model, grow_layers=1, lr=1e-3,
                  model=TINY)
    assert tr.s.model.layers == 3 and tr.init_provenance["grown_layers"] == 1
    tr.run()
    moved = tr.model.state_dict()["transformer.h.2.attn.c_proj.weight"]
    assert moved.abs().max().item() > 0
    meta = json.loads((tmp_path / "run" / "best" / "training.json").read_text())
    assert meta["init_from"]["grown_layers"] == 1
    assert json.loads((tmp_path / "run" / "best" / "config.json").read_text())["n_layer"] == 3
    with pytest.raises(UsageError, match="--grow-layers adds blocks to the model of --init-from"):
        _trainer(tmp_path / "cold", steps=1, grow_layers=1)


def test_distillation_target_is_a_mixture_with_the_true_symbol():
    """Against one-hot targets the soft cross entropy is the data's, whatever the share; against
    the model's own distribution it has no gradient (p - q = 0), so distilling a model into
    itself moves nothing but the true symbol's part."""
    torch.manual_seed(0)
    model = ImageGPT(TINY)
    ids, tgt = tokens_from_tiles(torch.from_numpy(_synthetic(4, 4)))
    onehot = torch.nn.functional.one_hot(tgt, 256).float()
    for share in (0.0, 0.3, 1.0):
        loss, hard = training_loss(model, ids, tgt, None, onehot, share)
        assert loss.item() == pytest.approx(hard.item(), rel=1e-6)
    with torch.no_grad():
        own = torch.softmax(model(ids).float(), dim=-1)
    for share, moves in ((1.0, False), (0.5, True)):
        model.zero_grad()
        training_loss(model, ids, tgt, None, own, share)[0].backward()
        norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters())).item()
        assert (norm > 1e-2) if moves else (norm < 1e-5), (share, norm)


def test_border_weight_weighs_a_tiles_first_row_and_column():
    """The weights fall on exactly the positions context modes 2 and 3 do not code; the loss
    is their weighted mean (zero on the border: the interior's mean alone), the logged figure
    the plain mean, and with a border weight of 0 the gradient is the interior's alone."""
    assert position_weights(4, 1.0) is None
    w = position_weights(4, 0.25).reshape(4, 4, 3)
    assert (w[0] == 0.25).all() and (w[:, 0] == 0.25).all() and (w[1:, 1:] == 1.0).all()
    torch.manual_seed(0)
    model = ImageGPT(TINY)
    ids, tgt = tokens_from_tiles(torch.from_numpy(_synthetic(4, 4)))
    with torch.no_grad():
        logits = model(ids).float()
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none")
    inner = nll.reshape(4, 4, 4, 3)[:, 1:, 1:].mean()
    loss, hard = training_loss(model, ids, tgt, None, weights=position_weights(4, 0.0))
    assert loss.item() == pytest.approx(inner.item(), rel=1e-5)
    assert hard.item() == pytest.approx(nll.mean().item(), rel=1e-6)
    plain, weighted = evaluate(model, _synthetic(4, 4), torch.device("cpu"), None,
                               weights=position_weights(4, 0.0))
    assert plain == pytest.approx(nll.mean().item() / math.log(2), rel=1e-5)
    assert weighted == pytest.approx(inner.item() / math.log(2), rel=1e-5)
    # weight 0 trains on the interior alone: training_loss's gradient is the interior mean's
    model.zero_grad()
    training_loss(model, ids, tgt, None, weights=position_weights(4, 0.0))[0].backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out = torch.nn.functional.cross_entropy(model(ids).float().transpose(1, 2), tgt,
                                            reduction="none")
    out.reshape(4, 4, 4, 3)[:, 1:, 1:].mean().backward()
    for g, p in zip(got, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-7)
    # a border weight between 0 and 1 still trains the border: the gradient differs
    model.zero_grad()
    training_loss(model, ids, tgt, None, weights=position_weights(4, 0.25))[0].backward()
    assert any(not torch.allclose(g, p.grad) for g, p in zip(got, model.parameters(), strict=True))


def test_border_weighted_run_chooses_its_export_on_the_weighted_validation(tmp_path):
    tr = _trainer(tmp_path, steps=3, border_weight=0.25)
    tr.run()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    best = min(log, key=lambda r: r["val_weighted_bpsp"])
    assert all(r["val_weighted_bpsp"] != r["val_bpsp"] for r in log)
    meta = json.loads((tmp_path / "run" / "best" / "training.json").read_text())
    assert meta["border_weight"] == 0.25
    assert meta["val_weighted_bpsp"] == pytest.approx(best["val_weighted_bpsp"], abs=1e-5)
    assert meta["val_bpsp"] == pytest.approx(best["val_bpsp"], abs=1e-5)
    with pytest.raises(UsageError, match="--border-weight must be between 0 and 1, got 2"):
        _trainer(tmp_path / "bad", steps=1, border_weight=2.0)
    with pytest.raises(UsageError, match=r"trained with --border-weight 0\.25; give the same"):
        _trainer(tmp_path, resume=True, steps=6)


def test_distilled_run_records_its_teacher(tmp_path):
    donor = _export_tiny(tmp_path)
    tr = _trainer(tmp_path / "kd", steps=3, teacher=donor, distill=0.8, lr=1e-3)
    tr.run()
    for export in ("best", "last"):
        meta = json.loads((tmp_path / "kd" / "run" / export / "training.json").read_text())
        assert meta["teacher"]["folder"] == donor and meta["teacher"]["distill"] == 0.8
    wide = ModelConfig(width=32, layers=2, heads=2, tile=8)
    with pytest.raises(UsageError, match="reads tiles of 4, the model 8"):
        Trainer(_settings(tmp_path / "bad", model=wide, teacher=donor),
                source=TileSource(tile=8, stacks=[_synthetic()]),
                val_tiles=_synthetic(4, 8, seed=1), quiet=True)


def test_resume_refuses_another_teacher_or_share(tmp_path):
    """A distilled run continues only against the target it trained on: the same teacher
    (by its weights' fingerprint, wherever it lies now) and the same --distill."""
    donor = _export_tiny(tmp_path)
    moved = tmp_path / "moved"
    shutil.copytree(donor, moved)
    other = _trainer(tmp_path / "other", steps=4, eval_every=100, seed=7)
    other.run()
    other = str(tmp_path / "other" / "run" / "best")
    _trainer(tmp_path / "kd", steps=2, teacher=donor, distill=0.8, lr=1e-3).run()
    kd = tmp_path / "kd"
    with pytest.raises(UsageError, match=r"trained with --teacher .*best; give the same"):
        _trainer(kd, resume=True, steps=3)
    with pytest.raises(UsageError, match=r"is not the model the run was trained with"):
        _trainer(kd, resume=True, steps=3, teacher=other, distill=0.8)
    with pytest.raises(UsageError, match=r"trained with --distill 0\.8; give the same \(not 0\.5\)"):
        _trainer(kd, resume=True, steps=3, teacher=donor, distill=0.5)
    resumed = _trainer(kd, resume=True, steps=3, teacher=str(moved), distill=0.8, lr=1e-3)
    assert resumed.step == 2
    resumed.run()
    assert resumed.step == 3
    with pytest.raises(UsageError, match="trained with no --teacher; give the same"):
        _trainer(tmp_path / "donor", resume=True, steps=4, teacher=donor)
    # A checkpoint written before the teacher's fingerprint was kept is compared by path
    # (the resumed run above recorded the moved copy's).
    ckpt_path = kd / "run" / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["settings"]["teacher"] == str(moved)
    del ckpt["teacher"]
    torch.save(ckpt, ckpt_path)
    with pytest.raises(UsageError, match=r"is not the path the run was trained with"):
        _trainer(kd, resume=True, steps=4, teacher=donor, distill=0.8)
    _trainer(kd, resume=True, steps=4, teacher=str(moved) + "/", distill=0.8)
    ckpt["settings"]["distill"] = "0.8"  # damaged: a setting igc never wrote
    torch.save(ckpt, ckpt_path)
    with pytest.raises(UsageError, match=r"checkpoint's 'distill' is str, not a setting igc wrote"):
        _trainer(kd, resume=True, steps=4, teacher=str(moved), distill=0.8)


def test_init_from_an_hf_checkpoint_matches_its_logits(tmp_path, tiny_model):
    """A model saved by transformers itself (the conftest's random ImageGPT) continues with
    the same predictions."""
    transformers = pytest.importorskip("transformers")
    cfg, state, provenance = load_pretrained(tiny_model)
    assert cfg == ModelConfig(width=32, layers=2, heads=4, tile=4)
    ours = ImageGPT(cfg).eval()
    ours.load_state_dict(state)
    hf = transformers.ImageGPTForCausalImageModeling.from_pretrained(tiny_model).eval()
    ids, _ = tokens_from_tiles(torch.randint(0, 256, (2, 4, 4, 3), dtype=torch.uint8))
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max().item() < 1e-4
    assert len(provenance["fingerprint"]) == 16


def test_init_from_refuses_models_it_cannot_continue(tmp_path, tiny_model):
    palette = tmp_path / "palette"
    shutil.copytree(tiny_model, palette)
    config = json.loads((palette / "config.json").read_text())
    config.update(vocab_size=513, n_positions=50, activation_function="gelu")
    (palette / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match=r"cannot continue a model with vocabulary 513.*"
                                         r"n_positions 50.*activation 'gelu'"):
        load_pretrained(str(palette))
    unscaled = tmp_path / "unscaled"
    shutil.copytree(tiny_model, unscaled)
    config = json.loads((unscaled / "config.json").read_text())
    (unscaled / "config.json").write_text(json.dumps({**config, "scale_attn_weights": False}))
    with pytest.raises(UsageError, match=r"unscaled attention"):
        load_pretrained(str(unscaled))
    (unscaled / "config.json").write_text(json.dumps({**config, "n_head": "4"}))
    from igc.errors import ModelError

    with pytest.raises(ModelError, match="n_head"):
        load_pretrained(str(unscaled))


def test_train_cli_warm_start_and_its_errors(tmp_path, tiny_model):
    from typer.testing import CliRunner

    from igc.cli.app import app

    np.savez(tmp_path / "train.npz", images=_synthetic(32, 8))
    np.savez(tmp_path / "val.npz", images=_synthetic(4, 8, seed=1))
    np.savez(tmp_path / "empty.npz", images=np.zeros((0, 8, 8, 3), np.uint8))
    common = ["train", "--data", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"),
              "--val-count", "8", "--batch", "4", "--steps", "2", "--device", "cpu"]
    runner = CliRunner()
    out = runner.invoke(app, [*common, "--init-from", tiny_model, "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    meta = json.loads((tmp_path / "r" / "best" / "training.json").read_text())
    assert meta["init_from"]["folder"] == tiny_model
    for extra, message in [
        (["--init-from", tiny_model, "--width", "64"], "--width 64 (the model has 32)"),
        (["--init-from", tiny_model, "--resume"], "--init-from starts a new run"),
        (["--init-from", tiny_model, "--grow-layers", "1", "--layers", "2"],
         "--layers 2 (the grown model has 3)"),
        (["--grow-layers", "1"], "--grow-layers adds blocks to the model of --init-from"),
        (["--init-from", str(tmp_path / "none")], "not found"),
        (["--width", "30", "--heads", "4"], "must be divisible"),
        (["--heads", "0"], "must be positive"),
        (["--steps", "-1"], "--steps must be positive, got -1"),
        (["--minutes", "-1"], "--minutes must be positive, got -1.0"),
        (["--tile", "4", "--data", str(tmp_path / "empty.npz")], "holds no images"),
        (["--init-from", tiny_model, "--teacher", tiny_model, "--distill", "1.5"],
         "--distill must be between 0 and 1, got 1.5"),
        (["--init-from", tiny_model, "--teacher", str(tmp_path / "none")], "not found"),
        (["--border-weight", "-0.5"], "--border-weight must be between 0 and 1, got -0.5"),
        (["--jpeg-downscale", "0.5"], "--jpeg-downscale must be between 1 and 16, got 0.5"),
    ]:
        out = runner.invoke(app, [*common, *extra, "--out", str(tmp_path / "x")])
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert out.exit_code != 0 and len(lines) == 1, out.output
        assert lines[0].startswith("igc: error:") and message in lines[0]


@pytest.mark.slow
def test_compiled_training_exports_plain_weights(tmp_path):
    """--compile trains through torch.compile, while checkpoints and exports keep the module's
    own parameter names (no `_orig_mod.` prefix), so they load as before, in HF too
    (~40 s on 2 cores)."""
    transformers = pytest.importorskip("transformers")
    tr = _trainer(tmp_path, steps=3, compile=True, eval_every=100)
    tr.run()
    assert tr.compiled
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert set(ckpt["model"]) == set(ImageGPT(TINY).state_dict())
    cfg, _, _ = load_pretrained(str(tmp_path / "run" / "best"))
    assert cfg == TINY
    _, info = transformers.ImageGPTForCausalImageModeling.from_pretrained(
        tmp_path / "run" / "best", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


@pytest.mark.slow
def test_compiled_bf16_training_follows_eager_fp32(tmp_path):
    """The CPU default (bf16 autocast, compiled step) follows the plain float32 step: same seed,
    same batches, and each step's loss agrees within bf16's unit roundoff (2^-8) of the loss,
    while the loss itself falls by far more than that (measured: 2e-4 nats apart over 12
    steps that take it from 5.55 to ~4.6 nats)."""
    plain = _trainer(tmp_path / "a", steps=12, precision="fp32", compile=False)
    fast = _trainer(tmp_path / "b", steps=12, precision="bf16", compile=True)
    assert fast.compiled and fast.dtype == torch.bfloat16 and not plain.compiled
    a = [plain.train_step().item() for _ in range(12)]
    b = [fast.train_step().item() for _ in range(12)]
    assert a[0] - a[-1] > 0.5
    for x, y in zip(a, b, strict=True):
        assert abs(x - y) < x * 2.0**-8


def test_compile_by_default_only_where_it_pays(tmp_path):
    from igc.training.trainer import compile_pays

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compile_pays(_settings(tmp_path, steps=None, minutes=10), cpu)
    assert compile_pays(_settings(tmp_path, steps=500), cpu)
    assert not compile_pays(_settings(tmp_path, steps=499, minutes=9), cpu)
    assert not compile_pays(_settings(tmp_path, steps=10**6), cuda)  # not measured: opt in
    assert not _trainer(tmp_path, steps=40).compiled  # short runs, such as tests, stay plain


def test_failed_compile_falls_back_unless_asked_for(tmp_path, monkeypatch):
    """A default compile that fails (no C++ compiler, say) trains on without it; an explicit
    --compile that fails is one error line."""
    import igc.training.trainer as trainer_module

    def broken_compile(fn):
        def call(*args, **kwargs):
            raise RuntimeError("no C++ compiler\nmore detail")
        return call

    monkeypatch.setattr(trainer_module.torch, "compile", broken_compile)
    auto = _trainer(tmp_path / "auto", steps=600)
    assert auto.compiled
    losses = [auto.train_step().item() for _ in range(2)]
    assert not auto.compiled and all(math.isfinite(x) for x in losses)
    asked = _trainer(tmp_path / "asked", steps=6, compile=True)
    with pytest.raises(UsageError, match=r"torch.compile failed \(RuntimeError: no C\+\+ compiler\)"):
        asked.train_step()


def test_evaluation_sets_refused(tmp_path):
    with pytest.raises(UsageError, match="evaluation"):
        load_training([tmp_path / "kodak"], tile=4)
    with pytest.raises(UsageError, match="not found"):
        load_training([tmp_path / "missing"], tile=4)


def test_jpeg_downscale_shrinks_only_jpegs(tmp_path):
    """--jpeg-downscale shrinks JPEG-coded photos (by what the file holds, not its name) before
    the scales are taken, in training and validation alike; lossless files keep their size."""
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, 64, 3), np.uint8)
    (tmp_path / "photos").mkdir()
    Image.fromarray(pixels).save(tmp_path / "photos" / "a.jpg", quality=90)
    Image.fromarray(pixels).save(tmp_path / "photos" / "b.png")
    Image.fromarray(pixels).save(tmp_path / "photos" / "c.png", format="JPEG")  # misnamed
    plain = load_training([tmp_path / "photos"], tile=4)
    shrunk = load_training([tmp_path / "photos"], tile=4, jpeg_downscale=2)
    shapes = [p.shape[:2] for p in shrunk.photos]
    assert [p.shape[:2] for p in plain.photos] == [(48, 64), (24, 32), (16, 21), (12, 16)] * 3
    half = [(24, 32), (12, 16), (8, 11), (6, 8)]
    assert shapes == [*half, (48, 64), (24, 32), (16, 21), (12, 16), *half]
    assert np.array_equal(shrunk.photos[4], pixels)  # the PNG, untouched
    val = load_validation(tmp_path / "photos", 4, count=10_000, jpeg_downscale=2)
    assert len(val) == 2 * (6 * 8) + 12 * 16  # every tile of both half-size JPEGs and the PNG
    with pytest.raises(UsageError, match=r"no 64×64 validation tiles in .* \(JPEGs shrunk by 2\)"):
        load_validation(tmp_path / "photos", 64, jpeg_downscale=2)
    (tmp_path / "jpegs").mkdir()
    shutil.copy(tmp_path / "photos" / "a.jpg", tmp_path / "jpegs")
    load_training([tmp_path / "jpegs"], tile=32)  # 48×64 holds a 32×32 tile
    with pytest.raises(UsageError, match=r"jpegs: no image holds a 32×32 tile \(JPEGs shrunk by 2\)"):
        load_training([tmp_path / "photos", tmp_path / "jpegs"], tile=32, jpeg_downscale=2)
    # Through the trainer's own loaders: the run shrinks its JPEGs and records the factor.
    tr = Trainer(_settings(tmp_path / "run1", steps=1, jpeg_downscale=2,
                           data=[str(tmp_path / "photos")], val=str(tmp_path / "photos"),
                           val_count=10_000), quiet=True)
    assert [p.shape[:2] for p in tr.source.photos] == [p.shape[:2] for p in shrunk.photos]
    assert len(tr.val_tiles) == len(val)
    tr.run()
    meta = json.loads((tmp_path / "run1" / "run" / "best" / "training.json").read_text())
    assert meta["data"]["jpeg_downscale"] == meta["val"]["jpeg_downscale"] == 2
    with pytest.raises(UsageError, match=r"trained with --jpeg-downscale 2; give the same"):
        Trainer(_settings(tmp_path / "run1", steps=2, data=[str(tmp_path / "photos")],
                          val=str(tmp_path / "photos")), resume=True, quiet=True)


def test_photos_smaller_than_a_tile_are_named_not_dropped_silently(tmp_path, capsys):
    """A photo that holds no tile at any scale is left out, counted in training.json's data and
    named in one line by the trainer; a folder of such photos alone stays an error (above)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(tmp_path / "photos" / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 20, 3), np.uint8)).save(tmp_path / "photos" / "b.png")
    Image.fromarray(rng.integers(0, 256, (9, 60, 3), np.uint8)).save(tmp_path / "photos" / "c.png")
    src = load_training([tmp_path / "photos"], tile=32)
    assert [p.shape[:2] for p in src.photos] == [(40, 40)]
    assert src.too_small == [str(tmp_path / "photos" / n) for n in ("b.png", "c.png")]
    assert src.description["photos_too_small"] == 2
    assert src.too_small_note(2) == (
        f"note: 2 photos smaller than a 32×32 tile left out of training (JPEGs shrunk by 2) "
        f"(first: {tmp_path / 'photos' / 'b.png'})")
    assert load_training([tmp_path / "photos"], tile=8).too_small_note() is None
    # The trainer (a 4×4 tile) says so in one line when it starts.
    Image.fromarray(rng.integers(0, 256, (3, 50, 3), np.uint8)).save(tmp_path / "photos" / "d.png")
    capsys.readouterr()
    tr = Trainer(_settings(tmp_path / "run", steps=1, data=[str(tmp_path / "photos")],
                           val=str(tmp_path / "photos")))
    assert capsys.readouterr().err == (f"note: 1 photo smaller than a 4×4 tile left out of "
                                       f"training (first: {tmp_path / 'photos' / 'd.png'})\n")
    assert len(tr.source.photos) == 4 + 4 + 2  # a and b at four scales, c (9×60) at 1 and ½


def test_a_run_folder_that_cannot_be_used_is_refused_before_training(tmp_path):
    """An earlier run's folder is never overwritten without --resume (its checkpoint, exports and
    log were replaced or mixed), and a folder that cannot be made is one line, not an
    'unexpected' error after the data was read."""
    tr = _trainer(tmp_path, steps=1)
    tr.run()
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(UsageError, match=r"run holds a run already \(checkpoint.pt, log.jsonl, "
                                         r"best, last\); pass --resume to continue it"):
        _trainer(tmp_path, steps=1)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="afile is a file, not a run folder"):
        _trainer(tmp_path / "unused", out=str(tmp_path / "afile"))
    with pytest.raises(UsageError, match=r"cannot create the run folder .*afile/run: .*afile is "
                                         "not a writable folder"):
        _trainer(tmp_path / "unused", out=str(tmp_path / "afile" / "run"))
    # exports and a log without a checkpoint (a run stopped before its first): --resume could
    # not continue it, so it is not offered
    (tmp_path / "early" / "best").mkdir(parents=True)
    (tmp_path / "early" / "log.jsonl").write_text("{}\n")
    with pytest.raises(UsageError, match=r"early holds a run already \(log.jsonl, best\); give "
                                         r"another --out, or remove them$"):
        _trainer(tmp_path / "unused", out=str(tmp_path / "early"))


@pytest.mark.parametrize("args,message", [
    (["--name", "/abs"], "--name '/abs' is not a run name"),
    (["--name", ""], "--name '' is not a run name"),
    (["--name", "a/b"], "--name 'a/b' is not a run name"),
])
def test_train_names_a_run_folder_in_one_line(tmp_path, args, message):
    from helpers import error_line, invoke

    result = invoke("train", "--steps", "1", "--no-compile", *args, "--data", tmp_path,
                    "--val", tmp_path)
    assert message in error_line(result)
    assert not Path("/abs").exists()


def test_budget_required(tmp_path):
    with pytest.raises(UsageError):
        _trainer(tmp_path, steps=None)
