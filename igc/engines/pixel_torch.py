"""Numerics 2 for a pixel model on torch (the `cuda` engine, and torch on the CPU for tests):
igc.engines.pixel_integer's integers, bit for bit.

The body is the ImageGPT torch engine's step (igc.engines.integer_torch) given its embedded
input, the sum of the previous pixel's three embeddings and the position's, which it leaves as
the final residual stream; R's head is that step's head. G's and B's heads are one pre-norm MLP
block and an output head each, built from the same engine's exact rules (norm, products,
quick-GELU, narrowing, frequencies), so they round as the reference's.

On CUDA the body's step runs as that engine's CUDA graphs (one per attended span); the
embedding sums and the heads run eagerly, a few small kernels each. A step copies its ids to
the device and its frequencies (or logits) back, as the ImageGPT engine's `step` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from igc.engines.integer import LIM
from igc.engines.integer_torch import F64, ExactLinear, TorchEngine, TorchState, take
from igc.engines.pixel_integer import IntPixelModel, checked_ids
from igc.engines.runtime import one_thread
from igc.errors import ModelError


@dataclass
class PixelTorchState:
    body: TorchState  # one position per pixel; its x_in and stream hold the body's input/output
    position: int  # subpixels stepped
    known: torch.Tensor  # (B, 2) int64: the current pixel's R and G, as given


class PixelTorchEngine:
    """The pixel reference engine's frequencies with torch on `device` ("cuda", "cpu", ...)."""

    def __init__(self, model: IntPixelModel, device="cuda", graph: bool | None = None,
                 span_step: int | None = 64) -> None:
        self.m = model
        self.body = b = TorchEngine(model.body, device, graph, span_step)
        self.device, self.cuda, self.name = b.device, b.cuda, b.name
        nf = model.body.norm_frac

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, np.float64)).to(b.device)

        self.wte_rg = [t(w) for w in model.wte_rg]
        self.heads = [([t(e) for e in head.embs], ExactLinear(head.fc, nf, b.device),
                       ExactLinear(head.proj, None, b.device), ExactLinear(head.out, nf, b.device))
                      for head in model.heads]

    def start(self, batch: int, length: int | None = None) -> PixelTorchState:
        """A batch of sequences of up to `length` subpixels (default: a whole tile)."""
        n = self.m.body.n_positions
        pixels = n if length is None else -(-length // 3)
        if pixels > n:
            raise ModelError(f"sequence longer than the model's context of {3 * n}")
        st = self.body.start(batch, pixels)
        c = self.m.body.n_embd
        st.x_in = torch.zeros((batch, c), dtype=F64, device=self.device)
        st.stream = torch.zeros((batch, c), dtype=F64, device=self.device)
        return PixelTorchState(st, 0, torch.zeros((batch, 2), dtype=torch.long,
                                                  device=self.device))

    def reset(self, state: PixelTorchState) -> None:
        """Start `state` over (new sequences, same batch), keeping its CUDA graphs, as the
        ImageGPT engine's `reset`."""
        self.body.reset(state.body)
        state.position = 0
        state.known.zero_()

    def step(self, state: PixelTorchState, ids: np.ndarray) -> np.ndarray:
        """The previous subpixel of each sequence -> (B, 256) frequencies of the next one."""
        return self._advance(state, ids, False).cpu().numpy()

    def step_logits(self, state: PixelTorchState, ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """As the reference's: the input of the head that ran and its Q16 logits, int64."""
        hidden, logits = self._advance(state, ids, True)
        return hidden.long().cpu().numpy(), logits.long().cpu().numpy()

    @torch.no_grad()
    def _advance(self, state: PixelTorchState, ids: np.ndarray, logits: bool):
        channel, st = state.position % 3, state.body
        ids_t = torch.from_numpy(checked_ids(ids, st.batch, channel)).to(self.device)
        if channel == 0:  # ids: the previous pixel's B (or the start symbol)
            if st.position >= st.length:
                raise ModelError("sequence longer than the model's context of "
                                 f"{3 * self.m.body.n_positions}")
            r, g = ((ids_t, ids_t) if state.position == 0
                    else (state.known[:, 0], state.known[:, 1]))  # the start: all three 256
            b = self.body
            x = (take(self.wte_rg[0], r) + take(self.wte_rg[1], g) + take(b.wte, ids_t)
                 + b.wpe[st.position]).clamp_(-LIM, LIM)
            st.x_in.copy_(x)
            b._advance(st, None, logits)
            out = (st.hidden.clone(), st.logits.clone()) if logits else st.out.clone()
        else:  # ids: this pixel's R (channel 1) or G (channel 2)
            state.known[:, channel - 1] = ids_t
            if self.cuda:
                out = self._head(channel, st.stream, state.known[:, :channel], logits)
            else:
                with one_thread():
                    out = self._head(channel, st.stream, state.known[:, :channel], logits)
        state.position += 1
        return out

    def _head(self, channel: int, stream: torch.Tensor, known: torch.Tensor, logits: bool):
        """G's (channel 1) or B's (2) head on the body's stream and the known channels: as the
        reference's `_head`, the stream plus their embeddings, one pre-norm MLP block, the
        output norm and product; its input and logits, or its frequencies."""
        b = self.body
        embs, fc, proj, out = self.heads[channel - 1]
        u = stream
        for k, emb in enumerate(embs):
            u = u + take(emb, known[:, k])
        u = u.clamp(-LIM, LIM)
        f = b._quick_gelu(fc(b._rms_norm(u)))
        g, g_e = b._narrow(f)
        u = proj(g, take(b.e_shift, g_e), take(b.e_up, g_e)).add_(u).clamp_(-LIM, LIM)
        h = b._rms_norm(u)
        z = out(h)
        return (h, z) if logits else b._frequencies(z)
