"""A model with one position per pixel (`igc train --arch pixel`): ImageGPT's body over a tile's
pixels, each pixel's three subpixels predicted in turn from one hidden state.

Why: a subpixel ImageGPT steps 768 times per 16×16 tile and attends over up to 768 positions; this
one steps 256 times over at most 256, so it trains about 3× faster on a CPU (docs/design.md, "One
position per pixel") and would decode with far less attention traffic. Position k reads pixel k-1
(one embedding per channel, summed; a start symbol at k = 0); its final residual stream h gives
R's logits, G's from h plus an embedding of R through a residual MLP, B's from h plus embeddings
of R and G through another. There is no final norm before the heads: each head normalises its own
input, so R's head is exactly ImageGPT's `lm_head(ln_f(h))`, and every operation is one numerics
2 already computes (embedding sums, RMS norms with their gains folded into the next product,
int8 products, quick-GELU, residual adds).

It speaks the subpixel model's interface: `forward(ids)` takes the same start-shifted subpixel
ids (igc.models.network.tokens_from_tiles) and returns logits in the same order, position j's
depending on ids[0..j] only, so the trainer's loss, validation and distillation serve both. Its
exports are not HuggingFace ImageGPT checkpoints: their config.json says model_type "igc-pixel",
which igc's own loader codes with (igc.models.pixel) and HuggingFace's cannot.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import nn

from igc.models.network import START_TOKEN, VOCAB_SIZE, Block, ModelConfig, RMSNorm

PIXEL_MODEL_TYPE = "igc-pixel"
_FIELDS = ("width", "layers", "heads", "tile")


def pixel_config(cfg: ModelConfig) -> dict:
    """The config.json of an exported pixel model."""
    return {"model_type": PIXEL_MODEL_TYPE, "vocab_size": VOCAB_SIZE,
            **{k: getattr(cfg, k) for k in _FIELDS}}


def pixel_config_problems(config: dict) -> list[str]:
    """What keeps a config.json from describing a pixel model this code builds (empty: none)."""
    problems = []
    if config.get("vocab_size") != VOCAB_SIZE:
        problems.append(f"vocabulary {config.get('vocab_size')} (subpixel values have "
                        f"{VOCAB_SIZE})")
    for key in _FIELDS:
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{key} {value!r} (a positive integer)")
    if not problems and config["width"] % config["heads"]:
        problems.append(f"width {config['width']} not a multiple of heads {config['heads']}")
    return problems


def pixel_config_of(config: dict) -> ModelConfig:
    """The architecture of a config that `pixel_config_problems` accepts."""
    return ModelConfig(**{k: config[k] for k in _FIELDS}, arch="pixel")


def pixel_weight_problem(cfg: ModelConfig, tensors: dict) -> str | None:
    """What keeps `tensors` from being the weights of the pixel model `cfg`, in words (None:
    they are). The config's sizes are checked against the file's before anything is built from
    them, so a config that claims a million layers or tiles is refused, not run out of memory
    on."""
    wpe = tensors.get("wpe.weight")
    if wpe is None or tuple(wpe.shape) != (cfg.tile * cfg.tile, cfg.width):
        got = "none" if wpe is None else tuple(wpe.shape)
        return (f"the position embedding 'wpe.weight' has shape {got}; its config.json (tile "
                f"{cfg.tile}, width {cfg.width}) needs {(cfg.tile * cfg.tile, cfg.width)}")
    blocks = {int(m.group(1)) for key in tensors if (m := re.match(r"h\.(\d+)\.", key))}
    if blocks != set(range(cfg.layers)):
        return f"its weights hold {len(blocks)} blocks; its config.json says {cfg.layers}"
    with torch.device("meta"):  # shapes only
        expected = {k: tuple(v.shape) for k, v in PixelGPT(cfg).state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != expected[k]]
    extra = sorted(set(tensors) - set(expected))
    if missing or wrong or extra:
        return (f"weights do not fit its config.json (missing: {', '.join(missing[:3]) or 'none'}"
                f"; wrong shape: {', '.join(wrong[:3]) or 'none'}; not in the model: "
                f"{', '.join(extra[:3]) or 'none'})")
    if bad := [k for k, v in tensors.items() if not bool(v.isfinite().all())]:
        return f"weight {bad[0]!r} holds NaN or infinite values"
    return None


def load_pixel(folder: Path) -> tuple[ModelConfig, dict, dict]:
    """(architecture, config.json, float32 weights) of a pixel export, each checked: a broken
    folder raises ModelError naming what is wrong."""
    from igc.errors import ModelError
    from igc.models.folders import read_config, read_tensors

    config = read_config(folder, (PIXEL_MODEL_TYPE,))
    if problems := pixel_config_problems(config):
        raise ModelError(f"{folder}: a pixel model with " + ", ".join(problems))
    cfg = pixel_config_of(config)
    tensors = read_tensors(folder)
    if problem := pixel_weight_problem(cfg, tensors):
        raise ModelError(f"{folder}: {problem}")
    return cfg, config, {k: v.float() for k, v in tensors.items()}


class PixelHead(nn.Module):
    """One channel's logits from the body's state plus the channels of the pixel already known."""

    def __init__(self, width: int, known: int):
        super().__init__()
        self.embs = nn.ModuleList(nn.Embedding(VOCAB_SIZE - 1, width) for _ in range(known))
        if known:
            self.ln = RMSNorm(width)
            self.fc = nn.Linear(width, 4 * width)
            self.proj = nn.Linear(4 * width, width)
        self.ln_out = RMSNorm(width)
        self.out = nn.Linear(width, VOCAB_SIZE - 1, bias=False)

    def forward(self, h: torch.Tensor, known: list[torch.Tensor]) -> torch.Tensor:
        u = h
        for emb, values in zip(self.embs, known, strict=True):
            u = u + emb(values)
        if self.embs:
            f = self.fc(self.ln(u))
            u = u + self.proj(f * torch.sigmoid(1.702 * f))  # quick-GELU, as the body's MLP
        return self.out(self.ln_out(u))


class PixelGPT(nn.Module):
    """`forward(ids)`: ids (B, T*T*3) as the subpixel model takes them -> logits (B, T*T*3, 256)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.ModuleList(nn.Embedding(VOCAB_SIZE, cfg.width) for _ in range(3))
        self.wpe = nn.Embedding(cfg.tile * cfg.tile, cfg.width)
        self.h = nn.ModuleList(Block(cfg.width, cfg.heads) for _ in range(cfg.layers))
        self.heads = nn.ModuleList(PixelHead(cfg.width, c) for c in range(3))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's init, as ImageGPT's: norms at one, biases at zero, residual projections scaled
        down with depth."""
        for name, p in self.named_parameters():
            if name.split(".")[-2].startswith("ln"):
                nn.init.ones_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            elif name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.cfg.layers))
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, n = ids.shape
        if n % 3:
            raise ValueError(f"a pixel model reads whole pixels: {n} subpixel positions")
        # ids[:, 1:] are the subpixels themselves; the missing last one (the last pixel's B) is
        # never read, so any value stands in for it
        pixels = torch.cat([ids[:, 1:], ids[:, :1]], 1).view(b, n // 3, 3)
        start = torch.full((b, 1, 3), START_TOKEN, dtype=ids.dtype, device=ids.device)
        prev = torch.cat([start, pixels[:, :-1]], 1)
        x = self.wpe(torch.arange(n // 3, device=ids.device))
        for c, emb in enumerate(self.wte):
            x = x + emb(prev[..., c])
        for block in self.h:
            x = block(x)
        logits = [head(x, [pixels[..., k] for k in range(c)]) for c, head in enumerate(self.heads)]
        return torch.stack(logits, 2).reshape(b, n, VOCAB_SIZE - 1)
