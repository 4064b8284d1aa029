"""Training-side helpers around igc's networks (igc.models.network, igc.models.pixel_network):
building one from its architecture, warm starts from an exported model, growing layers, and
exporting weights (a subpixel model's as HF and igc load them).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from igc.models.network import (  # noqa: F401  (re-exported: the trainer's and scripts' names)
    MLP,
    START_TOKEN,
    VOCAB_SIZE,
    Attention,
    Block,
    Conv1D,
    ImageGPT,
    ModelConfig,
    RMSNorm,
    Transformer,
    config_of,
    config_problems,
    tokens_from_tiles,
)

ARCHES = ("subpixel", "pixel")


def build_network(cfg: ModelConfig) -> torch.nn.Module:
    """The module of an architecture, freshly initialised (GPT-2's init)."""
    if cfg.arch == "pixel":
        from igc.models.pixel_network import PixelGPT

        return PixelGPT(cfg)
    if cfg.arch != "subpixel":
        raise ValueError(f"unknown architecture {cfg.arch!r} (one of {', '.join(ARCHES)})")
    return ImageGPT(cfg)


def export_config(cfg: ModelConfig) -> dict:
    """What an export's config.json holds: HF ImageGPT's keyword arguments, or a pixel model's."""
    if cfg.arch == "pixel":
        from igc.models.pixel_network import pixel_config

        return pixel_config(cfg)
    return cfg.hf_config()


def pretrained_architecture(spec: str) -> tuple[ModelConfig, str, Path]:
    """The architecture of an exported model (shipped id or folder), its id and folder, read
    from its config alone (the CLI checks `--init-from` before loading any data). Only models
    this trainer can continue are accepted: a pixel model this code builds, or an ImageGPT with
    subpixel vocabulary, square tiles, quick-GELU with a 4x MLP, epsilon 1e-5, attention scaled
    by 1/sqrt(head size) only, no tied head, and a config that passes the codec's own checks
    (igc.models.checks)."""
    from igc.errors import UsageError
    from igc.models.checks import check_config
    from igc.models.folders import read_config, resolve
    from igc.models.pixel_network import PIXEL_MODEL_TYPE, pixel_config_of, pixel_config_problems

    name, folder = resolve(spec)
    config = read_config(folder, ("imagegpt", PIXEL_MODEL_TYPE))
    if config["model_type"] == PIXEL_MODEL_TYPE:
        problems = pixel_config_problems(config)
        if problems:
            raise UsageError(f"--init-from {spec}: a pixel model with " + ", ".join(problems))
        return pixel_config_of(config), name, folder
    problems = config_problems(config)
    if problems:
        raise UsageError(f"--init-from {spec}: this trainer cannot continue a model with "
                         + ", ".join(problems))
    check_config(config, folder)  # types and ranges
    return config_of(config), name, folder


def load_pretrained(spec: str) -> tuple[ModelConfig, dict[str, torch.Tensor], dict]:
    """An exported model as (architecture, state_dict, provenance), for a warm start: what
    `pretrained_architecture` accepts, with weights that fit it and are finite."""
    from igc.errors import ModelError, UsageError
    from igc.models.folders import fingerprint_of, load_checked
    from igc.models.pixel_network import load_pixel

    cfg, name, folder = pretrained_architecture(spec)
    if cfg.arch == "pixel":
        try:
            cfg, config, tensors = load_pixel(folder)
        except ModelError as exc:
            raise UsageError(f"--init-from {spec}: {str(exc).removeprefix(f'{folder}: ')}"
                             ) from None
        provenance = {"model": name, "folder": str(folder),
                      "fingerprint": fingerprint_of(tensors, config)}
        return cfg, tensors, provenance
    config, tensors = load_checked(folder)  # shapes against the config, finite weights
    provenance = {"model": name, "folder": str(folder),
                  "fingerprint": fingerprint_of(tensors, config)}
    with torch.device("meta"):  # shapes only
        expected = build_network(cfg).state_dict()
    state = {k: v for k, v in tensors.items() if k in expected}  # HF's buffers left out
    missing = sorted(set(expected) - set(state))
    wrong = [k for k in state if state[k].shape != expected[k].shape]
    if missing or wrong:
        raise UsageError(f"--init-from {spec}: weights do not fit its config.json (missing: "
                         f"{', '.join(missing[:3]) or 'none'}; wrong shape: "
                         f"{', '.join(wrong[:3]) or 'none'})")
    return cfg, {k: v.float() for k, v in state.items()}, provenance


def fresh_state(cfg: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    """A freshly initialised network's weights (GPT-2 init from `seed`), leaving the global
    generator as it was."""
    generator_state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        return build_network(cfg).state_dict()
    finally:
        torch.set_rng_state(generator_state)


def pixel_from_subpixel(state: dict[str, torch.Tensor], cfg: ModelConfig,
                        seed: int = 0) -> dict[str, torch.Tensor]:
    """A pixel model's weights (architecture `cfg`) warm-started from a subpixel ImageGPT of the
    same body (`state`): the blocks as they are; pixel k's position embedding is the subpixel
    model's at k's R (position 3k), whose input is pixel k-1's B, so B's input embedding is the
    subpixel model's and R's and G's start at zero. Every head's output norm and layer are the
    subpixel model's final norm and head, so R's head computes exactly the subpixel model's
    first logits; G's and B's MLP outputs start at zero, their embeddings of the known channels
    fresh (`seed`). Measured as a warm start for training and not taken (docs/design.md, "One
    position per pixel"); it also gives tests a pixel model with a trained body."""
    out = fresh_state(cfg, seed)
    for key, value in state.items():
        if key.startswith("transformer.h."):
            out[key.removeprefix("transformer.")] = value.clone()
    out["wpe.weight"] = state["transformer.wpe.weight"][0::3].clone()
    out["wte.2.weight"] = state["transformer.wte.weight"].clone()
    out["wte.0.weight"] = torch.zeros_like(out["wte.0.weight"])
    out["wte.1.weight"] = torch.zeros_like(out["wte.1.weight"])
    for c in range(3):
        out[f"heads.{c}.ln_out.weight"] = state["transformer.ln_f.weight"].clone()
        out[f"heads.{c}.out.weight"] = state["lm_head.weight"].clone()
        if c:
            out[f"heads.{c}.proj.weight"] = torch.zeros_like(out[f"heads.{c}.proj.weight"])
            out[f"heads.{c}.proj.bias"] = torch.zeros_like(out[f"heads.{c}.proj.bias"])
    return out


def grow_layers(
    cfg: ModelConfig, state: dict[str, torch.Tensor], extra: int, seed: int = 0
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """`cfg` and `state` with `extra` blocks appended after the last one, each starting as the
    identity: its attention and MLP output projections are zero, so the grown model computes
    exactly what the given one does, and training starts from the given model's loss rather than
    from a random model's. The new blocks' other weights are a fresh model's (GPT-2 init, `seed`),
    so that the zero projections receive gradients as soon as training starts (a block with all
    weights zero would stay stuck at the identity)."""
    if extra < 1:
        raise ValueError(f"extra must be at least 1, got {extra}")
    grown = dataclasses.replace(cfg, layers=cfg.layers + extra)
    fresh = fresh_state(grown, seed)
    out = dict(state)
    blocks = "transformer.h." if cfg.arch == "subpixel" else "h."
    for i in range(cfg.layers, grown.layers):
        prefix = f"{blocks}{i}."
        for name, tensor in fresh.items():
            if name.startswith(prefix):
                zero = ".c_proj." in name
                out[name] = torch.zeros_like(tensor) if zero else tensor.clone()
    return grown, out


def export_pretrained(
    model: torch.nn.Module, config_dict: dict, out_dir: str | Path, extra: dict | None = None
) -> Path:
    """Write `config.json` + `model.safetensors`: for a subpixel model, loadable by
    `ImageGPTForCausalImageModeling`; for a pixel model, by `--init-from` (`export_config`).

    `config_dict` holds `ImageGPTConfig` keyword arguments (see `ModelConfig.hf_config`), or a
    pixel model's config. HF's
    attention-mask buffer is non-persistent, so the state_dict here is complete. Files are written
    to a temporary directory and swapped in, so a reader never sees half an export. `extra`, if
    given, is written as `training.json`.
    """
    from safetensors.torch import save

    from igc.errors import IgcError
    from igc.models.pixel_network import PIXEL_MODEL_TYPE

    if config_dict.get("model_type") == PIXEL_MODEL_TYPE:
        config_json = (json.dumps(config_dict, indent=2) + "\n").encode()
    else:
        from transformers import ImageGPTConfig

        config_json = ImageGPTConfig(**config_dict).to_json_string(use_diff=True).encode()

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
    }
    try:
        if tmp.exists():  # left by a run that was killed while exporting
            _rmtree(tmp)
        tmp.mkdir(parents=True)
        # serialised here and written by Python, whose writes report a full disk (safetensors'
        # own file writer was seen to drop the error of its last, buffered write)
        _write(tmp / "model.safetensors", save(state, metadata={"format": "pt"}))
        _write(tmp / "config.json", config_json)
        if extra is not None:
            _write(tmp / "training.json", (json.dumps(extra, indent=2) + "\n").encode())
        old = out.with_name(out.name + ".old")
        if out.exists():
            if old.exists():
                _rmtree(old)
            out.rename(old)
        tmp.rename(out)
        if old.exists():
            _rmtree(old)
    except OSError as exc:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise IgcError(f"cannot export the model to {out}: {exc.strerror or exc}") from None
    return out


def _write(path: Path, data: bytes) -> None:
    """All of `data` into a new file readable by others (0644), flushed to the disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)
