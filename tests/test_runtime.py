"""igc's ImageGPT runtime against HuggingFace's implementation, on random checkpoints.

Tolerance: both compute in float32; a transformer of this depth accumulates a few ulps per layer,
so logits of magnitude ~10 agree to ~1e-5 absolute. We assert 1e-4, and code lengths within 0.1%.
"""

import numpy as np
import pytest
import torch

from igc.models.imagegpt import ImageGPTModel, ModelError


@pytest.fixture(scope="module")
def pair(tiny_model):
    from transformers import ImageGPTForCausalImageModeling

    hf = ImageGPTForCausalImageModeling.from_pretrained(tiny_model).eval()
    return hf, ImageGPTModel(tiny_model)


def test_one_shot_logits_match_hf(pair):
    hf, ours = pair
    ids = torch.randint(0, 256, (5, 48), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = 256
    with torch.no_grad():
        ref = hf(ids).logits
    assert (ours.runtime.logits(ids) - ref).abs().max().item() < 1e-4


def test_incremental_steps_match_hf(pair):
    hf, ours = pair
    ids = torch.randint(0, 256, (3, 48), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = 256
    with torch.no_grad():
        ref = torch.log_softmax(hf(ids).logits, -1)
    state = ours.start(3, numerics=0)  # the float32 torch step; the fused one: test_speed.py
    stepped = np.stack([ours.step(state, ids[:, t].numpy()) for t in range(48)], axis=1)
    assert np.abs(np.log(stepped) - ref.numpy()).max() < 1e-4
    targets = ids[:, 1:].numpy()
    ref_bits = -ref[:, :-1].gather(-1, torch.from_numpy(targets)[..., None]).sum().item()
    our_bits = -np.log(np.take_along_axis(stepped[:, :-1], targets[..., None], -1)).sum()
    assert our_bits == pytest.approx(ref_bits, rel=1e-3)


def test_fingerprint_depends_on_weights(tiny_model, other_tiny_model):
    a, b = ImageGPTModel(tiny_model), ImageGPTModel(other_tiny_model)
    assert a.fingerprint != b.fingerprint and len(a.fingerprint) == 16
    assert ImageGPTModel(tiny_model).fingerprint == a.fingerprint


def test_pickle_only_checkpoint_is_refused(tmp_path, tiny_model):
    import shutil

    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(f"{tiny_model}/config.json", folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="pickle weights are refused"):
        ImageGPTModel(str(folder))


def test_other_architecture_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ModelError, match="'gpt2' model; igc needs an ImageGPT"):
        ImageGPTModel(str(tmp_path))


def test_partial_checkpoint_is_refused(tmp_path, tiny_model):
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copy(f"{tiny_model}/config.json", tmp_path / "config.json")
    tensors = load_file(f"{tiny_model}/model.safetensors")
    tensors = {k: v for k, v in tensors.items() if "h.1." not in k}
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ModelError, match=r"lack 'h\.1\.ln_1\.weight'"):
        ImageGPTModel(str(tmp_path))


def test_hub_id_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="openai/imagegpt-small"):
        ImageGPTModel("openai/imagegpt-small")
