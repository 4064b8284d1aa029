"""igc's own forward pass for the ImageGPT architecture.

Computes what HuggingFace's `ImageGPTForCausalImageModeling` computes (RMS-style layer norm without
bias, GPT-2 attention scaled by 1/sqrt(head_dim), quick-GELU MLP, untied 256-class head) from the
same weights, but with `scaled_dot_product_attention` and a preallocated key/value cache, so the
codec can step all tiles of an image one token at a time. Encoder and decoder both run `step`, in
the same batch layout and dtype, which is what makes their probabilities bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after): see `ImageGPTRuntime.step`."""
    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


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
    """Preallocated keys and values of one batch of sequences.

    Per layer one (batch * heads, length, head_dim) tensor each: the batch and head dimensions are
    merged so attention is a plain 3-D `bmm` over a prefix of the buffer (a 4-D `matmul` on the
    same slice copied it every step).
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    position: int
    batch: int = 0


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
        self.act_name = act
        self.act = ACTIVATIONS[act]
        if config.get("scale_attn_by_inverse_layer_idx") or config.get("reorder_and_upcast_attn"):
            raise ModelError("scale_attn_by_inverse_layer_idx/reorder_and_upcast_attn are unsupported")
        if self.n_head < 1 or self.n_embd % self.n_head:
            raise ModelError(f"n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
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
        if self.wte.shape != (self.vocab_size, self.n_embd):
            raise ModelError(f"wte has shape {tuple(self.wte.shape)}, config says "
                             f"({self.vocab_size}, {self.n_embd})")
        self.layers = [
            Layer(
                get(f"h.{i}.ln_1.weight"),
                self._scale_queries(get(f"h.{i}.attn.c_attn.weight")),
                self._scale_queries(get(f"h.{i}.attn.c_attn.bias")),
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
        self.lm_head_t = self.lm_head.T.contiguous()

    def _scale_queries(self, w: torch.Tensor) -> torch.Tensor:
        """Fold the 1/sqrt(head_dim) attention scale into the query projection: one multiply
        fewer per layer and step (the scores differ from HuggingFace's in the last bit only)."""
        w = w.clone()
        w[..., : self.n_embd] *= self.scale
        return w

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # One fused kernel instead of pow/mean/add/rsqrt/mul/mul; it reduces each row on one
        # thread, so its rounding does not depend on the thread count (tests check this).
        return F.rms_norm(x, (self.n_embd,), weight, self.eps)

    def _mlp_(self, x: torch.Tensor, layer: Layer) -> torch.Tensor:
        """x += mlp(norm(x)), in place on x (2-D: rows × channels)."""
        h = torch.addmm(layer.fc_b, self._norm(x, layer.ln_2), layer.fc_w)
        if self.act_name == "quick_gelu":
            h.mul_(torch.sigmoid(h * 1.702))
        else:
            h = self.act(h)
        return x.add_(torch.addmm(layer.mlp_proj_b, h, layer.mlp_proj_w))

    @torch.inference_mode()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """One-shot causal pass: (B, L) ids -> (B, L, vocab-1) logits."""
        b, n = ids.shape
        c, heads, d = self.n_embd, self.n_head, self.head_dim
        x = (self.wte[ids] + self.wpe[:n]).view(b * n, c)
        for layer in self.layers:
            qkv = torch.addmm(layer.c_attn_b, self._norm(x, layer.ln_1), layer.c_attn_w)
            # (B, L, 3, heads, d) -> three (B, heads, L, d) views; SDPA takes them strided.
            q, k, v = qkv.view(b, n, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
            a = a.transpose(1, 2).reshape(b * n, c)
            x.add_(torch.addmm(layer.c_proj_b, a, layer.c_proj_w))
            self._mlp_(x, layer)
        return (self._norm(x, self.ln_f) @ self.lm_head_t).view(b, n, -1)

    def start(self, batch: int, length: int | None = None) -> CacheState:
        length = length or self.n_positions
        shape = (batch * self.n_head, length, self.head_dim)
        return CacheState(
            keys=[torch.zeros(shape) for _ in self.layers],
            values=[torch.zeros(shape) for _ in self.layers],
            position=0,
            batch=batch,
        )

    def step(self, state: CacheState, ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per sequence; returns (B, vocab-1) logits for the next token.

        Runs on one thread whatever torch's setting: MKL's sgemm splits a product with few rows
        differently by thread count (measured: 5 rows gave other last bits with 2 threads than
        with 1), and encoder and decoder must compute identical floats. Parallelism for coding
        comes from sharding images across processes (igc.parallel), not from threads in a step.
        """
        with one_thread():
            return self._step(state, ids)

    @torch.inference_mode()
    def _step(self, state: CacheState, ids: torch.Tensor) -> torch.Tensor:
        pos = state.position
        if pos >= state.keys[0].shape[1]:
            raise ModelError(f"sequence longer than the model's context of {self.n_positions}")
        c, heads, d = self.n_embd, self.n_head, self.head_dim
        x = self.wte[ids] + self.wpe[pos]  # (B, C)
        b = x.shape[0]
        if b * heads != state.keys[0].shape[0]:
            raise ModelError(f"step got {b} tokens for a cache of batch {state.batch}")
        for i, layer in enumerate(self.layers):
            qkv = torch.addmm(layer.c_attn_b, self._norm(x, layer.ln_1), layer.c_attn_w)
            qkv = qkv.view(b, 3, heads, d)
            keys, values = state.keys[i], state.values[i]
            keys[:, pos].view(b, heads, d).copy_(qkv[:, 1])
            values[:, pos].view(b, heads, d).copy_(qkv[:, 2])
            q = qkv[:, 0].reshape(b * heads, 1, d)
            # Plain bmm + softmax, not scaled_dot_product_attention: SDPA's CPU kernel chooses
            # its blocking by thread count and length, so its rounding changed with the threads.
            scores = torch.bmm(q, keys[:, : pos + 1].transpose(1, 2))
            a = torch.bmm(torch.softmax(scores, dim=-1), values[:, : pos + 1])
            x.add_(torch.addmm(layer.c_proj_b, a.view(b, c), layer.c_proj_w))
            self._mlp_(x, layer)
        state.position = pos + 1
        return self._norm(x, self.ln_f) @ self.lm_head_t
