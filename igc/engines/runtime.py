"""igc's own forward pass for the ImageGPT architecture.

Computes what HuggingFace's `ImageGPTForCausalImageModeling` computes (RMS-style layer norm without
bias, GPT-2 attention scaled by 1/sqrt(head_dim), quick-GELU MLP, untied 256-class head) from the
same weights, but with `scaled_dot_product_attention` and a preallocated key/value cache, so the
codec can step all tiles of an image one token at a time. Encoder and decoder both run `step`, in
the same batch layout, dtype and *numerics*, which is what makes their probabilities bit-identical.

Two float steps exist, named by the numerics number a file records (docs/format.md): 0 is the
plain torch step (what files of format versions 1-2 used), 1 runs attention, norms, activation and
the output softmax in igc's fused kernels (igc/engines/kernels.py) around torch's weight products
(docs/speed.md). Both are kept so that their files still decode, on the kind of CPU that wrote
them. New files of quick-GELU models use numerics 2, the integer step of igc/engines/integer.py,
which decodes on any machine; this runtime remains its source of weights, the one-shot pass of
`--estimate`, and the float step of models numerics 2 does not compute.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from igc.core.numerics import FUSED, TORCH
from igc.errors import FormatError, ModelError

NUMERICS_TORCH = TORCH.number
NUMERICS_FUSED = FUSED.number
NUMERICS = (NUMERICS_TORCH, NUMERICS_FUSED)  # the float steps this runtime computes

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


@dataclass
class FusedState:
    """Cache and scratch buffers of the fused step, as NumPy arrays for the kernels with torch
    views of the same memory for the weight products (`out=`), so a step allocates nothing."""

    keys: list[np.ndarray]  # per layer (batch * heads, blocks, head_dim, BLOCK) bf16 bits
    values: list[np.ndarray]  # per layer (batch * heads, length, head_dim) bf16 bits
    position: int
    batch: int
    x: np.ndarray  # (B, C) residual stream
    h: np.ndarray  # (B, C) normed input of the next product
    qkv: np.ndarray  # (B, 3C)
    attn: np.ndarray  # (B, C)
    delta: np.ndarray  # (B, C) output of a residual branch
    ff: np.ndarray  # (B, 4C) or (B, n_inner)
    logits: np.ndarray  # (B, vocab - 1)
    scratch: np.ndarray
    t: dict  # torch views: h, qkv, attn, delta, ff, logits


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

    def start(self, batch: int, length: int | None = None,
              numerics: int = NUMERICS_FUSED) -> CacheState | FusedState:
        length = length or self.n_positions
        if numerics == NUMERICS_FUSED:
            return self._start_fused(batch, length)
        if numerics != NUMERICS_TORCH:
            raise FormatError(f"unknown numerics {numerics}: the file was written by a newer igc "
                              f"(this one computes {', '.join(map(str, NUMERICS))})")
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
        comes from sharding images across processes (igc/benchmark/shard.py), not from threads in a step.
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

    # -- the fused step (numerics 1) ---------------------------------------------------------
    def _start_fused(self, batch: int, length: int) -> FusedState:
        try:
            from igc.engines import kernels
        except ImportError as exc:
            raise ModelError(f"igc's runtime needs numba ({exc}); pip install "
                             "'igc-codec[model]'") from None

        if kernels.NUMERICS != NUMERICS_FUSED:
            raise AssertionError("igc.engines.kernels.NUMERICS disagrees with the runtime")
        c, heads, d = self.n_embd, self.n_head, self.head_dim
        inner = self.layers[0].fc_w.shape[1] if self.layers else 4 * c
        z = np.zeros
        st = FusedState(
            keys=[z((batch * heads, -(-length // kernels.BLOCK), d, kernels.BLOCK), np.uint16)
                  for _ in self.layers],
            values=[z((batch * heads, length, d), np.uint16) for _ in self.layers],
            position=0, batch=batch,
            x=z((batch, c), np.float32), h=z((batch, c), np.float32),
            qkv=z((batch, 3 * c), np.float32), attn=z((batch, c), np.float32),
            delta=z((batch, c), np.float32), ff=z((batch, inner), np.float32),
            logits=z((batch, self.lm_head_t.shape[1]), np.float32),
            scratch=z(2 * max(length, inner, self.lm_head_t.shape[1]), np.float32), t={},
        )
        st.t = {k: torch.from_numpy(getattr(st, k)) for k in ("h", "qkv", "attn", "delta", "ff",
                                                              "logits")}
        self._kernels = kernels
        return st

    @cached_property
    def _np(self) -> dict:
        """NumPy views of the weights the kernels read (no copies)."""
        return {
            "wte": self.wte.numpy(), "wpe": self.wpe.numpy(), "ln_f": self.ln_f.numpy(),
            "ln_1": [layer.ln_1.numpy() for layer in self.layers],
            "ln_2": [layer.ln_2.numpy() for layer in self.layers],
        }

    def step_probs(self, state: FusedState, ids: np.ndarray) -> np.ndarray:
        """The fused step: one token per sequence in, (B, vocab-1) float64 probabilities out.

        The weight products run in torch on one thread (see `step`); everything else in
        igc.engines.kernels, whose arithmetic does not depend on the machine.
        """
        k = self._kernels  # set by _start_fused, which made `state`
        pos = state.position
        if pos >= state.values[0].shape[1]:
            raise ModelError(f"sequence longer than the model's context of {self.n_positions}")
        if len(ids) != state.batch:
            raise ModelError(f"step got {len(ids)} tokens for a cache of batch {state.batch}")
        w, t = self._np, state.t
        eps = np.float32(self.eps)
        x = state.x
        np.add(w["wte"][ids], w["wpe"][pos], out=x)
        qkv = state.qkv.reshape(state.batch, 3, self.n_head, self.head_dim)
        quick = self.act_name == "quick_gelu"
        with one_thread(), torch.inference_mode():
            for i, layer in enumerate(self.layers):
                if i == 0:
                    k.rms_norm(x, w["ln_1"][0], eps, state.h)
                else:
                    k.add_rms_norm(x, state.delta, w["ln_1"][i], eps, state.h)
                torch.addmm(layer.c_attn_b, t["h"], layer.c_attn_w, out=t["qkv"])
                k.attend(qkv, state.keys[i], state.values[i], pos, state.attn,
                         state.scratch)
                torch.addmm(layer.c_proj_b, t["attn"], layer.c_proj_w, out=t["delta"])
                k.add_rms_norm(x, state.delta, w["ln_2"][i], eps, state.h)
                torch.addmm(layer.fc_b, t["h"], layer.fc_w, out=t["ff"])
                if quick:
                    k.quick_gelu_(state.ff, state.scratch)
                else:
                    t["ff"].copy_(self.act(t["ff"]))
                torch.addmm(layer.mlp_proj_b, t["ff"], layer.mlp_proj_w, out=t["delta"])
            k.add_rms_norm(x, state.delta, w["ln_f"], eps, state.h)
            torch.mm(t["h"], self.lm_head_t, out=t["logits"])
        probs = np.empty(state.logits.shape, np.float64)
        k.softmax(state.logits, probs, state.scratch)
        state.position = pos + 1
        return probs
