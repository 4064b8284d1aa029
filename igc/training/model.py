"""A pure-PyTorch ImageGPT that trains fast and exports weights HF can load.

HF's `ImageGPTForCausalImageModeling` builds an explicit (n_positions × n_positions) mask and
materialises attention weights; here attention goes through `scaled_dot_product_attention`, which
is several times faster on CPU and GPU. The arithmetic is otherwise the same, and every parameter
has the name and layout of HF's state_dict, so `export_pretrained` output loads with
`ImageGPTForCausalImageModeling.from_pretrained`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

START_TOKEN = 256
VOCAB_SIZE = 257  # subpixel values 0..255 plus the start token


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a model; `tile` fixes the sequence length (tile*tile*3 subpixels)."""

    width: int = 128
    layers: int = 4
    heads: int = 4
    tile: int = 16

    @property
    def n_positions(self) -> int:
        return self.tile * self.tile * 3

    def to_dict(self) -> dict:
        return asdict(self)

    def hf_config(self) -> dict:
        """The `ImageGPTConfig` keyword arguments describing the same network."""
        return {
            "vocab_size": VOCAB_SIZE,
            "n_positions": self.n_positions,
            "n_embd": self.width,
            "n_layer": self.layers,
            "n_head": self.heads,
            "n_inner": None,
            "activation_function": "quick_gelu",
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "layer_norm_epsilon": 1e-5,
            "initializer_range": 0.02,
            "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
            "tie_word_embeddings": False,
        }


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight stored (in, out), so the exported tensors need no transpose."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(
            *x.shape[:-1], self.weight.shape[1]
        )


class RMSNorm(nn.Module):
    """ImageGPT's "LayerNorm": no mean subtraction and no bias (an RMS norm)."""

    def __init__(self, width: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (
            x
            / torch.sqrt(torch.mean(torch.square(x), dim=-1, keepdim=True) + self.eps)
            * self.weight
        )


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.c_attn = Conv1D(width, 3 * width)
        self.c_proj = Conv1D(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        # SDPA's default scale is 1/sqrt(head_dim), matching HF's scale_attn_weights=True.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.c_fc = Conv1D(width, 4 * width)
        self.c_proj = Conv1D(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        return self.c_proj(h * torch.sigmoid(1.702 * h))  # quick_gelu, HF's ImageGPT default


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = RMSNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = RMSNorm(width)
        self.mlp = MLP(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.wte = nn.Embedding(VOCAB_SIZE, cfg.width)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.width)
        self.h = nn.ModuleList(Block(cfg.width, cfg.heads) for _ in range(cfg.layers))
        self.ln_f = RMSNorm(cfg.width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.wte(ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class ImageGPT(nn.Module):
    """ImageGPT for next-subpixel prediction; `forward(ids)` returns logits over 256 values."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.transformer = Transformer(cfg)
        self.lm_head = nn.Linear(cfg.width, VOCAB_SIZE - 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init; PyTorch's std-1 embedding default was measured to train far worse."""
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or "ln_f" in name:
                nn.init.ones_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            elif name.endswith("c_proj.weight"):
                # Residual projections scaled so the residual stream's variance does not grow
                # with depth.
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.cfg.layers))
            else:
                nn.init.normal_(p, 0.0, std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.transformer(ids))


def tokens_from_tiles(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, T, 3) uint8 tiles -> (inputs, targets), each (B, T*T*3) int64.

    RGB interleaved in raster order; inputs start with the start token and drop the last subpixel.
    """
    targets = tiles.reshape(tiles.shape[0], -1).long()
    start = torch.full((targets.shape[0], 1), START_TOKEN, dtype=torch.long, device=targets.device)
    return torch.cat([start, targets[:, :-1]], dim=1), targets


def pretrained_architecture(spec: str) -> tuple[ModelConfig, str, Path]:
    """The architecture of an exported model (shipped id or folder), its id and folder, read
    from its config alone (the CLI checks `--init-from` before loading any data). Only models
    this trainer can continue are accepted: subpixel vocabulary, square tiles, quick-GELU with a
    4x MLP, epsilon 1e-5, attention scaled by 1/sqrt(head size) only, no tied head, and a config
    that passes the codec's own checks (igc.models.checks)."""
    from igc.errors import UsageError
    from igc.models.checks import check_config
    from igc.models.folders import read_config, resolve

    name, folder = resolve(spec)
    config = read_config(folder)
    width, layers, heads = config.get("n_embd"), config.get("n_layer"), config.get("n_head")
    n_positions = config.get("n_positions", 0)
    tile = math.isqrt(n_positions // 3) if isinstance(n_positions, int) and n_positions > 0 else 0
    problems = []
    if config.get("vocab_size") != VOCAB_SIZE:
        problems.append(f"vocabulary {config.get('vocab_size')} (subpixel models have {VOCAB_SIZE})")
    if not tile or tile * tile * 3 != n_positions:
        problems.append(f"n_positions {n_positions} is not a square tile's T*T*3")
    if config.get("activation_function", "quick_gelu") != "quick_gelu":
        problems.append(f"activation {config.get('activation_function')!r}")
    if config.get("n_inner") not in (None, 4 * (width or 0)):
        problems.append(f"n_inner {config.get('n_inner')}")
    if config.get("layer_norm_epsilon", 1e-5) != 1e-5:
        problems.append(f"layer_norm_epsilon {config.get('layer_norm_epsilon')}")
    if config.get("tie_word_embeddings"):
        problems.append("a tied output head")
    if config.get("scale_attn_weights", True) is not True:
        problems.append("unscaled attention (scale_attn_weights false)")
    if config.get("scale_attn_by_inverse_layer_idx"):
        problems.append("attention scaled by the layer index")
    if problems:
        raise UsageError(f"--init-from {spec}: this trainer cannot continue a model with "
                         + ", ".join(problems))
    check_config(config, folder)  # types and ranges
    return ModelConfig(width=width, layers=layers, heads=heads, tile=tile), name, folder


def load_pretrained(spec: str) -> tuple[ModelConfig, dict[str, torch.Tensor], dict]:
    """An exported model as (architecture, state_dict, provenance), for a warm start: what
    `pretrained_architecture` accepts, with weights that fit it and are finite."""
    from igc.errors import UsageError
    from igc.models.folders import fingerprint_of, load_checked

    cfg, name, folder = pretrained_architecture(spec)
    config, tensors = load_checked(folder)  # shapes against the config, finite weights
    provenance = {"model": name, "folder": str(folder),
                  "fingerprint": fingerprint_of(tensors, config)}
    expected = ImageGPT(cfg).state_dict()
    state = {k: v for k, v in tensors.items() if k in expected}
    missing = sorted(set(expected) - set(state))
    wrong = [k for k in state if state[k].shape != expected[k].shape]
    if missing or wrong:
        raise UsageError(f"--init-from {spec}: weights do not fit its config.json (missing: "
                         f"{', '.join(missing[:3]) or 'none'}; wrong shape: "
                         f"{', '.join(wrong[:3]) or 'none'})")
    return cfg, {k: v.float() for k, v in state.items()}, provenance


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
    grown = ModelConfig(cfg.width, cfg.layers + extra, cfg.heads, cfg.tile)
    generator_state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        fresh = ImageGPT(grown).state_dict()
    finally:
        torch.set_rng_state(generator_state)
    out = dict(state)
    for i in range(cfg.layers, grown.layers):
        prefix = f"transformer.h.{i}."
        for name, tensor in fresh.items():
            if name.startswith(prefix):
                zero = ".c_proj." in name
                out[name] = torch.zeros_like(tensor) if zero else tensor.clone()
    return grown, out


def export_pretrained(
    model: ImageGPT, config_dict: dict, out_dir: str | Path, extra: dict | None = None
) -> Path:
    """Write `config.json` + `model.safetensors` loadable by `ImageGPTForCausalImageModeling`.

    `config_dict` holds `ImageGPTConfig` keyword arguments (see `ModelConfig.hf_config`). HF's
    attention-mask buffer is non-persistent, so the state_dict here is complete. Files are written
    to a temporary directory and swapped in, so a reader never sees half an export. `extra`, if
    given, is written as `training.json`.
    """
    from safetensors.torch import save
    from transformers import ImageGPTConfig

    from igc.errors import IgcError

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
        _write(tmp / "config.json",
               ImageGPTConfig(**config_dict).to_json_string(use_diff=True).encode())
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
