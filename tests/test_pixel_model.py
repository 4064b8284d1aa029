"""The pixel model (`igc train --arch pixel`): causal over the subpixel ids the trainer feeds
every model, trained, exported, continued and grown by the trainer (the codec's use of it:
tests/test_pixel_codec.py). Tiny configs (width 32, 2 layers, 4×4 tiles) keep the file to seconds on one core."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import pixel_trainer, ramp_images

from igc.errors import UsageError
from igc.models.network import ModelConfig, tokens_from_tiles
from igc.models.pixel_network import PIXEL_MODEL_TYPE, PixelGPT
from igc.training.model import grow_layers, load_pretrained

PIXEL = ModelConfig(width=32, layers=2, heads=2, tile=4, arch="pixel")

def _export(tmp_path: Path) -> Path:
    pixel_trainer(tmp_path / "donor", steps=2).run()
    return tmp_path / "donor" / "best"


def _random_pixel_model(seed: int = 0) -> PixelGPT:
    torch.manual_seed(seed)
    model = PixelGPT(PIXEL).eval()
    for p in model.parameters():  # large weights, so that every input visibly matters
        torch.nn.init.normal_(p, 0.0, 0.3)
    return model


def test_each_subpixel_is_predicted_from_the_earlier_ones_only():
    """Position j's logits change with ids[j] (the subpixel just before it) and never with a
    later id: what lets a decoder code one subpixel at a time, as with ImageGPT. ids[0] is
    always the start token, which the model supplies itself."""
    model = _random_pixel_model()
    ids, _ = tokens_from_tiles(torch.randint(0, 256, (2, 4, 4, 3), dtype=torch.uint8))
    with torch.no_grad():
        base = model(ids)
        assert base.shape == (2, 48, 256)
        for j in range(1, ids.shape[1]):
            changed = ids.clone()
            changed[:, j] = (changed[:, j] + 77) % 256
            out = model(changed)
            assert torch.equal(out[:, :j], base[:, :j]), f"position {j} leaks backwards"
            assert not torch.equal(out[:, j], base[:, j]), f"position {j} ignores id {j}"


def test_a_pixel_model_reads_whole_pixels_only():
    with pytest.raises(ValueError, match="reads whole pixels"):
        _random_pixel_model()(torch.zeros((1, 47), dtype=torch.long))


def test_training_lowers_the_loss(tmp_path):
    tr = pixel_trainer(tmp_path / "run", steps=40, lr=3e-3)
    losses = [tr.train_step().item() for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3])


def test_a_run_exports_a_pixel_model_that_init_from_continues(tmp_path):
    tr = pixel_trainer(tmp_path / "donor")
    tr.run()
    best = tmp_path / "donor" / "best"
    config = json.loads((best / "config.json").read_text())
    assert config == {"model_type": PIXEL_MODEL_TYPE, "vocab_size": 257, "width": 32,
                      "layers": 2, "heads": 2, "tile": 4}
    donor_bits = json.loads((best / "training.json").read_text())["val_bpsp"]

    warm = pixel_trainer(tmp_path / "warm", steps=2, init_from=str(best), lr=1e-3)
    assert warm.s.model == PIXEL and warm.step == 0 and not warm.opt.state
    from safetensors.torch import load_file

    for key, value in load_file(best / "model.safetensors").items():
        assert torch.equal(warm.model.state_dict()[key], value), key
    warm.run()
    records = [json.loads(line) for line in (tmp_path / "warm" / "log.jsonl").open()]
    assert records[0]["step"] == 0 and records[0]["val_bpsp"] == pytest.approx(donor_bits,
                                                                               abs=1e-5)
    # a resumed pixel run is still a pixel run: the checkpoint's architecture wins
    again = pixel_trainer(tmp_path / "warm", resume=True, steps=2, model=ModelConfig())
    assert again.s.model == PIXEL


def test_a_grown_pixel_model_predicts_what_its_donor_does(tmp_path):
    tr = pixel_trainer(tmp_path / "donor", steps=2)
    tr.run()
    cfg, state, _ = load_pretrained(str(tmp_path / "donor" / "best"))
    grown_cfg, grown_state = grow_layers(cfg, state, 1, seed=3)
    assert grown_cfg == ModelConfig(width=32, layers=3, heads=2, tile=4, arch="pixel")
    donor, grown = PixelGPT(cfg).eval(), PixelGPT(grown_cfg).eval()
    donor.load_state_dict(state)
    grown.load_state_dict(grown_state)
    ids, _ = tokens_from_tiles(torch.randint(0, 256, (3, 4, 4, 3), dtype=torch.uint8))
    with torch.no_grad():
        assert torch.equal(donor(ids), grown(ids))
    assert not grown_state["h.2.mlp.c_proj.weight"].any()


def test_a_pixel_model_distils_a_subpixel_teacher_and_teaches_one(tmp_path, tiny_model):
    """The teacher's distributions reach the step: the same seed and batch with a teacher move
    the weights elsewhere than without. A pixel export teaches a subpixel student as well."""
    plain = pixel_trainer(tmp_path / "plain", steps=1)
    taught = pixel_trainer(tmp_path / "taught", steps=1, teacher=tiny_model, distill=0.5)
    before = {k: v.clone() for k, v in taught.model.state_dict().items()}
    assert all(torch.equal(v, plain.model.state_dict()[k]) for k, v in before.items())
    plain.train_step()
    taught.train_step()
    assert not torch.equal(plain.model.state_dict()["h.0.attn.c_attn.weight"],
                           taught.model.state_dict()["h.0.attn.c_attn.weight"])
    taught.run()
    meta = json.loads((tmp_path / "taught" / "best" / "training.json").read_text())
    assert meta["teacher"]["folder"] == tiny_model and meta["teacher"]["distill"] == 0.5

    student = pixel_trainer(tmp_path / "student", steps=1, model=ModelConfig(32, 2, 2, 4),
                       teacher=str(tmp_path / "taught" / "best"))
    assert student.teacher.cfg == PIXEL
    student.run()


def test_resume_reads_the_architecture_from_the_checkpoint(tmp_path):
    """Checkpoints written before pixel models have no `arch`: they are subpixel runs. An
    architecture this build does not know is refused in one line."""
    subpixel = pixel_trainer(tmp_path / "a", steps=1, model=ModelConfig(32, 2, 2, 4))
    subpixel.save_checkpoint()
    ckpt = torch.load(subpixel.ckpt_path, weights_only=False)
    del ckpt["settings"]["model"]["arch"]
    torch.save(ckpt, subpixel.ckpt_path)
    again = pixel_trainer(tmp_path / "a", resume=True, steps=2, model=PIXEL)
    assert again.s.model.arch == "subpixel"
    ckpt["settings"]["model"]["arch"] = "voxel"
    torch.save(ckpt, subpixel.ckpt_path)
    with pytest.raises(UsageError, match="unknown architecture 'voxel'"):
        pixel_trainer(tmp_path / "a", resume=True, steps=2)


def test_imagegpt_refuses_another_architecture():
    from igc.models.network import ImageGPT

    with pytest.raises(ValueError, match="not 'pixel'"):
        ImageGPT(PIXEL)


@pytest.mark.parametrize("change,message", [
    ({"heads": 3}, "width 32 not a multiple of heads 3"),
    ({"layers": "2"}, "layers '2' (a positive integer)"),
    ({"tile": True}, "tile True (a positive integer)"),
    ({"vocab_size": 256}, "vocabulary 256"),
    ({"width": None}, "width None"),
    # sizes the weights do not have are refused from the file, before a model is built
    ({"tile": 100_000}, "needs (10000000000, 32)"),
    ({"layers": 1_000_000}, "its weights hold 2 blocks; its config.json says 1000000"),
    ({"width": 64}, "'wpe.weight' has shape (16, 32)"),
])
def test_init_from_refuses_a_damaged_pixel_config(tmp_path, change, message):
    best = _export(tmp_path)
    config = json.loads((best / "config.json").read_text())
    (best / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(UsageError, match=re.escape(message)):
        load_pretrained(str(best))


def test_init_from_refuses_pixel_weights_that_are_not_the_models(tmp_path):
    from safetensors.torch import load_file, save_file

    best = _export(tmp_path)
    weights = load_file(best / "model.safetensors")
    for damaged, message in [
        ({**weights, "garbage": torch.zeros(3)}, "not in the model: garbage"),
        ({k: v for k, v in weights.items() if k != "heads.2.out.weight"},
         "missing: heads.2.out.weight"),
        ({**weights, "heads.1.fc.bias": torch.full((128,), float("nan"))},
         "'heads.1.fc.bias' holds NaN or infinite values"),
        ({**weights, "heads.1.fc.bias": torch.zeros(5)}, "wrong shape: heads.1.fc.bias"),
    ]:
        save_file(damaged, best / "model.safetensors")
        with pytest.raises(UsageError, match=re.escape(message)):
            load_pretrained(str(best))


def test_train_cli_pixel_runs_and_its_errors(tmp_path, tiny_model):
    from typer.testing import CliRunner

    from igc.cli.app import app

    np.savez(tmp_path / "train.npz", images=ramp_images(32))
    np.savez(tmp_path / "val.npz", images=ramp_images(4, seed=1))
    common = ["train", "--data", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"),
              "--val-count", "8", "--batch", "4", "--steps", "2", "--device", "cpu"]
    tiny = ["--tile", "4", "--width", "32", "--layers", "2", "--heads", "2"]
    runner = CliRunner()
    out = runner.invoke(app, [*common, *tiny, "--arch", "pixel", "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    config = json.loads((tmp_path / "r" / "best" / "config.json").read_text())
    assert config["model_type"] == PIXEL_MODEL_TYPE
    for extra, message in [
        ([*tiny, "--arch", "voxel"], "--arch must be one of subpixel, pixel, got 'voxel'"),
        # the architecture comes from the model
        (["--arch", "pixel", "--init-from", tiny_model], "--arch pixel (the model has subpixel)"),
    ]:
        out = runner.invoke(app, [*common, *extra, "--out", str(tmp_path / "x")])
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert out.exit_code != 0 and len(lines) == 1, out.output
        assert lines[0].startswith("igc: error:") and message in lines[0], lines[0]

    # HuggingFace's ImageGPT cannot run it: one line, not a traceback
    out = runner.invoke(app, ["speed", "--model", str(tmp_path / "r" / "best"), "--backend",
                              "hf,int", "--images", str(tmp_path / "val.npz")])
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert out.exit_code != 0 and len(lines) == 1, out.output
    assert "is a pixel model" in lines[0] and "--backend int" in lines[0], lines[0]
