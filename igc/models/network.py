"""igc's ImageGPT as a torch module: what the trainer trains and what context mode 4's encoder tunes
to an image (igc.models.tuning).

HF's `ImageGPTForCausalImageModeling` builds an explicit (n_positions × n_positions) mask and
materialises attention weights; here attention goes through `scaled_dot_product_attention`, which
is several times faster on CPU and GPU. The arithmetic is otherwise the same, and every parameter
has the name and layout of HF's state_dict, so its weights load in
`ImageGPTForCausalImageModeling.from_pretrained` and in igc's runtime (igc.engines.runtime).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

START_TOKEN = 256
VOCAB_SIZE = 257  # subpixel values 0..255 plus the start token


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a model; `tile` fixes the sequence length (tile*tile*3 subpixels).
    `arch`: "subpixel" (ImageGPT, one position per subpixel) or "pixel" (one per pixel,
    igc.models.pixel_network)."""

    width: int = 128
    layers: int = 4
    heads: int = 4
    tile: int = 16
    arch: str = "subpixel"

    @property
    def n_positions(self) -> int:
        return self.tile * self.tile * 3

    def to_dict(self) -> dict:
        return asdict(self)

    def hf_config(self) -> dict:
        """The `ImageGPTConfig` keyword arguments describing the same network."""
        if self.arch != "subpixel":
            raise ValueError(f"a {self.arch} model is not a HuggingFace ImageGPT")
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


def config_problems(config: dict) -> list[str]:
    """What keeps an HF config from being this network, in words (empty: it is one): subpixel
    vocabulary, square tiles, quick-GELU with a 4x MLP, epsilon 1e-5, attention scaled by
    1/sqrt(head size) only, no tied head."""
    width = config.get("n_embd")
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
    return problems


def config_of(config: dict) -> ModelConfig:
    """The architecture of an HF config that `config_problems` accepts."""
    return ModelConfig(width=config["n_embd"], layers=config["n_layer"], heads=config["n_head"],
                       tile=math.isqrt(config["n_positions"] // 3))


def cpu_has_fast_bf16() -> bool:
    """True if the CPU computes bf16 natively; elsewhere bf16 autocast was measured ~9× slower."""
    from pathlib import Path

    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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
        if cfg.arch != "subpixel":  # a script handed a pixel export would score a random model
            raise ValueError(f"ImageGPT is the subpixel architecture, not {cfg.arch!r}")
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
