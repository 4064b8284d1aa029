"""Shared fixtures: a tiny randomly initialised ImageGPT saved like a real checkpoint, and images
(the builders live in helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_tiny_model, smooth_image


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 4×4-tile ImageGPT (48-token context), random weights, in HuggingFace format."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-imagegpt"))


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("other-imagegpt"), seed=1)


def _threads(n: int):
    """The codec's thread count (igc.api.set_threads) for one test, restored after it."""
    import torch

    from igc.api import set_threads

    before = torch.get_num_threads()
    set_threads(n)
    yield
    set_threads(before)


@pytest.fixture
def two_threads():
    yield from _threads(2)


@pytest.fixture
def one_thread():
    yield from _threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def photo_dir(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (h, w) in enumerate([(20, 24), (17, 9), (32, 32), (8, 40)]):
        Image.fromarray(smooth_image(h, w, seed=i)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture
def small_png(tmp_path):
    """A 6x5 RGB PNG of random pixels (helpers.rgb())."""
    from helpers import rgb
    from PIL import Image

    path = tmp_path / "small.png"
    Image.fromarray(rgb()).save(path)
    return path
