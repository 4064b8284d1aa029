"""Shared fixtures: a tiny randomly initialised ImageGPT saved like a real checkpoint, and images."""

from __future__ import annotations

import numpy as np
import pytest


def make_tiny_model(folder, *, tile: int = 4, width: int = 32, layers: int = 2, heads: int = 4,
                    seed: int = 0, scale: float = 1.0) -> str:
    import torch
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

    torch.manual_seed(seed)
    config = ImageGPTConfig(vocab_size=257, n_positions=tile * tile * 3, n_embd=width,
                            n_layer=layers, n_head=heads)
    model = ImageGPTForCausalImageModeling(config).eval()
    # Spread the random logits so the model is far from uniform, as a trained one is.
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
        if scale != 1.0:  # weights far outside training's range (saturation tests)
            for p in model.parameters():
                p.mul_(scale)
    model.save_pretrained(folder, safe_serialization=True)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 4×4-tile ImageGPT (48-token context), random weights, in HuggingFace format."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-imagegpt"))


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("other-imagegpt"), seed=1)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like image: smooth gradients plus mild noise, so codecs have something to find."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 3 + y, 128 + 60 * np.sin(x / 7.0), y * 2 + 40], axis=-1)
    return np.clip(base + r.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def photo_dir(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (h, w) in enumerate([(20, 24), (17, 9), (32, 32), (8, 40)]):
        Image.fromarray(smooth_image(h, w, seed=i)).save(folder / f"img{i}.png")
    return folder
