"""Numerics 2 for a pixel model (igc.models.pixel_network): its quantization and the reference
engine, the definition fast engines match (igc.engines.pixel_cpu).

A pixel model is an ImageGPT whose input embedding is the sum of three (one per channel of the
previous pixel) and which has two more heads. So its integer model is the ImageGPT one
(igc.engines.integer), quantized by the same rules from the same kind of weights (its body, with
R's head as the output head: a norm, then a product with the norm's gain and log2(e) folded in),
plus the other two channels' embedding tables (Q16) and G's and B's heads, which are one
pre-norm MLP block each (the body's integer MLP, to the rounding) and an output head like R's.
No rule is new.

The engine keeps the subpixel interface: `step(state, ids)` takes the previous subpixel of each
sequence and returns the next one's frequencies. At a pixel's R (positions 3k) it runs the body
on the pixel before, whose R and G it kept from the two steps before; at G and B it runs a head
on the stream it kept and the channels just given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from igc.engines import integer as I
from igc.errors import ModelError


@dataclass
class IntPixelHead:
    embs: list[np.ndarray]  # (256, C) Q16: the known channels' embeddings
    fc: I.Linear | None  # the MLP (None for R's head); its norm's gain folded in
    proj: I.Linear | None
    out: I.Linear  # its output norm's gain and log2(e) folded in, no bias


@dataclass
class IntPixelModel:
    body: I.IntModel  # wte: the previous pixel's B; wpe: per pixel; head: R's
    wte_rg: list[np.ndarray]  # (257, C) Q16: the previous pixel's R and G
    heads: list[IntPixelHead]  # G's and B's
    digest: str = field(default="")


def runtime_tensors(state: dict, cfg) -> tuple[dict, dict]:
    """An HF-style (config, tensors) for the ImageGPT inside a pixel model's weights (`state`):
    the body, B's input embedding as `wte`, and R's head as `ln_f` + `lm_head`."""
    config = {"model_type": "imagegpt", "n_embd": cfg.width, "n_head": cfg.heads,
              "n_layer": cfg.layers, "n_positions": cfg.tile * cfg.tile, "vocab_size": 257,
              "activation_function": "quick_gelu", "layer_norm_epsilon": 1e-5}
    tensors = {k: v for k, v in state.items() if k.startswith("h.")}
    tensors.update({"wte.weight": state["wte.2.weight"], "wpe.weight": state["wpe.weight"],
                    "ln_f.weight": state["heads.0.ln_out.weight"],
                    "lm_head.weight": state["heads.0.out.weight"]})
    return config, tensors


def quantize_pixel(state: dict, cfg) -> IntPixelModel:
    """The integer model of a pixel model's float weights (`state`, its state_dict) of
    architecture `cfg` (igc.models.network.ModelConfig with arch "pixel")."""
    from igc.engines.runtime import ImageGPTRuntime

    config, tensors = runtime_tensors(state, cfg)
    body = I.quantize(ImageGPTRuntime(config, tensors))

    def f64(key: str) -> np.ndarray:
        return state[key].detach().double().numpy()

    heads = []
    for c in (1, 2):
        p = f"heads.{c}."
        heads.append(IntPixelHead(
            [I.q16(f64(f"{p}embs.{k}.weight")) for k in range(c)],
            I.quantize_linear(f64(f"{p}fc.weight").T * f64(f"{p}ln.weight")[:, None],
                              f64(f"{p}fc.bias")),
            I.quantize_linear(f64(f"{p}proj.weight").T, f64(f"{p}proj.bias")),
            I.quantize_linear(f64(f"{p}out.weight").T * f64(f"{p}ln_out.weight")[:, None]
                              * I.LOG2E, None)))
    model = IntPixelModel(body, [I.q16(f64(f"wte.{c}.weight")) for c in (0, 1)], heads)
    model.digest = pixel_digest(model)
    return model


def pixel_digest(model: IntPixelModel) -> str:
    import hashlib

    h = hashlib.sha256(model.body.digest.encode())
    for t in model.wte_rg:
        h.update(np.ascontiguousarray(t, np.int64).tobytes())
    for head in model.heads:
        for part in [*head.embs, *(x for lin in (head.fc, head.proj, head.out)
                                   for x in (lin.w, lin.m, lin.e, lin.b))]:
            h.update(np.ascontiguousarray(part, np.int64).tobytes())
    return h.hexdigest()[:16]


def checked_ids(ids, batch: int, channel: int) -> np.ndarray:
    """A step's ids as int64, refused in one line unless they are one integer per sequence of a
    batch of `batch`, in [0, 257) at a pixel's R (the previous pixel's B, or the start symbol)
    and in [0, 256) at its G and B (values, never the start)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ModelError(f"one integer token per sequence, got ids of shape {ids.shape} "
                         f"and type {ids.dtype}")
    if len(ids) != batch:
        raise ModelError(f"step got {len(ids)} tokens for a cache of batch {batch}")
    limit = 257 if channel == 0 else 256
    if ids.size and (ids.min() < 0 or ids.max() >= limit):
        raise ModelError(f"token ids must lie in [0, {limit}) at this step")
    return ids.astype(np.int64)


@dataclass
class PixelState:
    cache: I.IntState  # the body's keys and values, one position per pixel
    position: int  # subpixels stepped
    known: list[np.ndarray]  # the current pixel's channels given so far
    stream: np.ndarray | None  # the body's final residual stream at the current pixel


class PixelReferenceEngine:
    """Plain NumPy integers over ImageGPT's reference rules (igc.engines.integer)."""

    name = "reference"

    def __init__(self, model: IntPixelModel) -> None:
        self.m = model
        self.body = I.ReferenceEngine(model.body)

    def start(self, batch: int, length: int | None = None) -> PixelState:
        """A batch of sequences of up to `length` subpixels (default: a whole tile)."""
        n = self.m.body.n_positions
        pixels = n if length is None else -(-length // 3)
        if pixels > n:
            raise ModelError(f"sequence longer than the model's context of {3 * n}")
        return PixelState(self.body.start(batch, pixels), 0, [], None)

    def step(self, state: PixelState, ids: np.ndarray) -> np.ndarray:
        """The previous subpixel of each sequence -> (B, 256) frequencies of the next one."""
        return I.frequencies(self.step_logits(state, ids)[1])

    def step_logits(self, state: PixelState, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As `ReferenceEngine.step_logits`: the input of the head that ran ((B, C) int16-range
        values with `norm_frac` fraction bits) and its Q16 log2-unit logits (B, 256)."""
        m, channel = self.m, state.position % 3
        ids = checked_ids(ids, state.cache.batch, channel)
        if channel == 0:  # ids: the previous pixel's B (or the start symbol)
            if state.cache.position >= state.cache.keys[0].shape[1]:
                raise ModelError("sequence longer than the model's context of "
                                 f"{3 * m.body.n_positions}")
            r, g = (ids, ids) if state.position == 0 else state.known  # the start: all 256
            x = m.wte_rg[0][r] + m.wte_rg[1][g] + m.body.wte[ids] + m.body.wpe[state.cache.position]
            state.stream = self.body.blocks(state.cache, np.clip(x, -I.LIM, I.LIM))
            state.known = []
            h = I.rms_norm(state.stream, m.body)
            out = h, I.linear(h, m.body.norm_frac, m.body.head)
        else:  # ids: this pixel's R (channel 1) or G (channel 2)
            state.known.append(ids)
            out = self._head(m.heads[channel - 1], state.stream, state.known)
        state.position += 1
        return out

    def _head(self, head: IntPixelHead, stream: np.ndarray, known: list[np.ndarray]):
        """G's or B's output head's input and logits (Q16 log2 units): the stream plus the
        known channels' embeddings, one pre-norm MLP block as the body's, then the output norm
        and product."""
        m = self.m.body
        u = stream
        for emb, values in zip(head.embs, known, strict=True):
            u = u + emb[values]
        u = np.clip(u, -I.LIM, I.LIM)
        f = I.quick_gelu(I.linear(I.rms_norm(u, m), m.norm_frac, head.fc))
        g, sg = I.narrow(f)
        u = np.clip(u + I.linear(g, I.FX - sg, head.proj), -I.LIM, I.LIM)
        h = I.rms_norm(u, m)
        return h, I.linear(h, m.norm_frac, head.out)
