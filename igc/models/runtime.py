"""igc's own forward pass for the ImageGPT architecture.

Computes what HuggingFace's `ImageGPTForCausalImageModeling` computes (RMS-style layer norm without
bias, GPT-2 attention scaled by 1/sqrt(head_dim), quick-GELU MLP, untied 256-class head) from the
same weights, but with `scaled_dot_product_attention` and a preallocated key/value cache, so the
codec can step all tiles of an image one token at a time. Encoder and decoder both run `step`, in
the same batch layout and dtype, which is what makes their probabilities bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from igc.errors import ModelError

ACTIVATIONS = {
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


@dataclass
class Layer:
    ln_1: torch.Tensor
    c_attn_w: torch.Tensor
    c_attn_b: torch.Tensor
    c_proj_w: torch.Tensor
    c_proj_b: torch.Tensor
    ln_2: torch.Tensor
    fc_w: torch.Tensor
    fc_b: torch.Tensor
    mlp_proj_w: torch.Tensor
    mlp_proj_b: torch.Tensor


@dataclass
class CacheState:
    keys: list[torch.Tensor]  # per layer (B, heads, L, head_dim)
    values: list[torch.Tensor]
    position: int


class ImageGPTRuntime:
    """Inference-only ImageGPT over HuggingFace-format weights."""

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]) -> None:
        try:
            self.n_embd = int(config["n_embd"])
            self.n_head = int(config["n_head"])
            self.n_layer = int(config["n_layer"])
            self.n_positions = int(config["n_positions"])
            self.vocab_size = int(config["vocab_size"])
        except KeyError as exc:
            raise ModelError(f"model config lacks {exc.args[0]!r}") from None
        self.eps = float(config.get("layer_norm_epsilon", 1e-5))
        act = config.get("activation_function", "quick_gelu")
        if act not in ACTIVATIONS:
            raise ModelError(f"unsupported activation {act!r} in model config")
        self.act = ACTIVATIONS[act]
        if config.get("scale_attn_by_inverse_layer_idx") or config.get("reorder_and_upcast_attn"):
            raise ModelError("scale_attn_by_inverse_layer_idx/reorder_and_upcast_attn are unsupported")
        self.head_dim = self.n_embd // self.n_head
        self.scale = 1.0 / math.sqrt(self.head_dim) if config.get("scale_attn_weights", True) else 1.0
        t = {k.removeprefix("transformer."): v.float().contiguous() for k, v in tensors.items()}

        def get(key: str) -> torch.Tensor:
            if key not in t:
                raise ModelError(f"model weights lack {key!r}: not a complete ImageGPT checkpoint")
            return t[key]

        self.wte = get("wte.weight")
        self.wpe = get("wpe.weight")
        self.ln_f = get("ln_f.weight")
        self.lm_head = get("lm_head.weight")
        self.layers = [
            Layer(
                get(f"h.{i}.ln_1.weight"),
                get(f"h.{i}.attn.c_attn.weight"),
                get(f"h.{i}.attn.c_attn.bias"),
                get(f"h.{i}.attn.c_proj.weight"),
                get(f"h.{i}.attn.c_proj.bias"),
                get(f"h.{i}.ln_2.weight"),
                get(f"h.{i}.mlp.c_fc.weight"),
                get(f"h.{i}.mlp.c_fc.bias"),
                get(f"h.{i}.mlp.c_proj.weight"),
                get(f"h.{i}.mlp.c_proj.bias"),
            )
            for i in range(self.n_layer)
        ]
        if self.wte.shape != (self.vocab_size, self.n_embd):
            raise ModelError(f"wte has shape {tuple(self.wte.shape)}, config says "
                             f"({self.vocab_size}, {self.n_embd})")

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * weight

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        return x.view(b, length, self.n_head, self.head_dim).transpose(1, 2)

    def _mlp(self, x: torch.Tensor, layer: Layer) -> torch.Tensor:
        h = self._norm(x, layer.ln_2)
        return x + torch.addmm(layer.mlp_proj_b, self.act(torch.addmm(
            layer.fc_b, h.reshape(-1, h.shape[-1]), layer.fc_w)), layer.mlp_proj_w).view_as(x)

    @torch.inference_mode()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """One-shot causal pass: (B, L) ids -> (B, L, vocab-1) logits."""
        b, n = ids.shape
        x = self.wte[ids] + self.wpe[:n]
        for layer in self.layers:
            h = self._norm(x, layer.ln_1)
            qkv = torch.addmm(layer.c_attn_b, h.reshape(b * n, -1), layer.c_attn_w).view(b, n, -1)
            q, k, v = (self._heads(part) for part in qkv.split(self.n_embd, dim=-1))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
            a = a.transpose(1, 2).reshape(b * n, self.n_embd)
            x = x + torch.addmm(layer.c_proj_b, a, layer.c_proj_w).view(b, n, -1)
            x = self._mlp(x, layer)
        return self._norm(x, self.ln_f) @ self.lm_head.T

    def start(self, batch: int, length: int | None = None) -> CacheState:
        length = length or self.n_positions
        shape = (batch, self.n_head, length, self.head_dim)
        return CacheState(
            keys=[torch.zeros(shape) for _ in self.layers],
            values=[torch.zeros(shape) for _ in self.layers],
            position=0,
        )

    @torch.inference_mode()
    def step(self, state: CacheState, ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per sequence; returns (B, vocab-1) logits for the next token."""
        pos = state.position
        if pos >= state.keys[0].shape[2]:
            raise ModelError(f"sequence longer than the model's context of {self.n_positions}")
        x = self.wte[ids] + self.wpe[pos]  # (B, C)
        b = x.shape[0]
        for i, layer in enumerate(self.layers):
            h = self._norm(x, layer.ln_1)
            qkv = torch.addmm(layer.c_attn_b, h, layer.c_attn_w)
            q, k, v = (p.view(b, self.n_head, 1, self.head_dim) for p in qkv.split(self.n_embd, -1))
            state.keys[i][:, :, pos : pos + 1] = k
            state.values[i][:, :, pos : pos + 1] = v
            # Plain matmul + softmax, not scaled_dot_product_attention: SDPA's CPU kernel splits
            # its reduction by thread count, so its rounding changed with the number of threads.
            scores = (q @ state.keys[i][:, :, : pos + 1].transpose(-1, -2)) * self.scale
            a = torch.softmax(scores, dim=-1) @ state.values[i][:, :, : pos + 1]
            x = x + torch.addmm(layer.c_proj_b, a.reshape(b, self.n_embd), layer.c_proj_w)
            x = self._mlp(x.unsqueeze(1), layer).squeeze(1)
        state.position = pos + 1
        return self._norm(x, self.ln_f) @ self.lm_head.T
