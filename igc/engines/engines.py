"""Which implementation computes numerics 2: `reference`, `cpu` or `cuda`.

The three give identical frequencies (igc.engines.integer states the rules; tests compare them),
so the engine is how a file is coded, never what: it is a process setting, like the thread
count, and files do not record it. A file encoded by one engine decodes with any other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from igc.core.numerics import INTEGER
from igc.errors import ModelError, UsageError

ENGINES = INTEGER.engines  # igc.core.numerics: the implementations of numerics 2
DEFAULT_ENGINE = INTEGER.default_engine
_chosen: str | None = None


def check_engine(name: str) -> str:
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}: choose from {', '.join(ENGINES)}")
    return name


def set_engine(name: str | None) -> None:
    """Choose the engine for this process (None: $IGC_ENGINE, else `cpu`)."""
    global _chosen
    _chosen = None if name is None else check_engine(name)


def current_engine() -> str:
    if _chosen is not None:
        return _chosen
    env = os.environ.get("IGC_ENGINE", "").strip()
    return check_engine(env) if env else DEFAULT_ENGINE


@contextmanager
def using_engine(name: str | None) -> Iterator[None]:
    """The engine `name` inside the block (None: leave the current choice)."""
    global _chosen
    before = _chosen
    if name is not None:
        set_engine(name)
    try:
        yield
    finally:
        _chosen = before


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def make_engine(name: str, model):
    """An engine instance over an integer model: an `IntModel` (ImageGPT) or an
    `IntPixelModel` (igc.engines.pixel_integer), the one place either family's engines are
    chosen."""
    from igc.engines.pixel_integer import IntPixelModel

    pixel = isinstance(model, IntPixelModel)
    if name == "reference":
        if pixel:
            from igc.engines.pixel_integer import PixelReferenceEngine

            return PixelReferenceEngine(model)
        from igc.engines.integer import ReferenceEngine

        return ReferenceEngine(model)
    if name == "cpu":
        try:
            if pixel:
                from igc.engines.pixel_cpu import PixelCpuEngine as engine
            else:
                from igc.engines.integer_cpu import CpuEngine as engine
        except ImportError as exc:
            raise ModelError(f"igc's cpu engine needs numba ({exc}); pip install "
                             "'igc-codec[model]', or use --engine reference (slow, same files)"
                             ) from None
        return engine(model)
    if name == "cuda":
        if not cuda_available():
            raise ModelError("--engine cuda: no CUDA device is available here (torch sees none); "
                             "use --engine cpu, which gives the same files")
        if pixel:
            from igc.engines.pixel_torch import PixelTorchEngine

            return PixelTorchEngine(model, device="cuda")
        from igc.engines.integer_torch import TorchEngine

        return TorchEngine(model, device="cuda")
    raise UsageError(f"unknown engine {name!r}: choose from {', '.join(ENGINES)}")
