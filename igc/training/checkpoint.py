"""Training checkpoints: written atomically (a failed or interrupted save keeps the previous one
whole) and read back safely (tensors and plain values only, every field checked) for --resume."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from igc.errors import IgcError, UsageError


def atomic_save(obj, path: Path) -> None:
    """`obj` to `path` through a temporary file: a full disk keeps the previous checkpoint and
    leaves no temporary file (torch reports a failed write as RuntimeError)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise IgcError(f"cannot save the checkpoint {path}: {reason.splitlines()[0][:200]}"
                       ) from None
    except BaseException:  # a second Ctrl-C while saving: keep the previous checkpoint whole
        tmp.unlink(missing_ok=True)
        raise


CHECKPOINT_KEYS = {"model": dict, "optimizer": dict, "step": int, "tokens": int,
                   "elapsed": float, "best": float, "numpy_rng": dict,
                   "torch_rng": torch.Tensor, "python_rng": tuple, "settings": dict}


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's contents, read without running code: `weights_only=True` unpickles only
    tensors and plain containers (dict, list, tuple, str, numbers, None), so a planted
    checkpoint.pt cannot execute anything (a full unpickle could). Raises UsageError (one
    line) for anything else or a missing field."""
    import pickle

    from igc.core.files import check_regular

    # a FIFO named checkpoint.pt would block the read forever: regular files only
    check_regular(path, lambda text: UsageError(f"--resume: {text}"))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--resume: {path} is not a checkpoint igc can read safely (it holds "
                         f"more than tensors and plain values, or is damaged): {first[:200]}"
                         ) from None
    if not isinstance(ckpt, dict):
        raise UsageError(f"--resume: {path} is not an igc checkpoint (a {type(ckpt).__name__})")
    for key, kind in CHECKPOINT_KEYS.items():
        value = ckpt.get(key)
        if kind is float and isinstance(value, int):
            continue
        if not isinstance(value, kind):
            raise UsageError(f"--resume: {path} is not an igc checkpoint: {key!r} is "
                             f"{type(value).__name__}, not {kind.__name__}")
    return ckpt
