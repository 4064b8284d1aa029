"""Numerics 2 for a pixel model on the CPU, fast: igc.engines.pixel_integer's integers, bit for
bit (scripts/pixel_speed.py times it against the subpixel model's step).

The body is the cpu engine's own step (igc.engines.integer_cpu) over the pixel model's body,
given the embedded input (the sum of the previous pixel's three embeddings), which it leaves as
the final residual stream; R's head is that step's head. G's and B's heads are one numba call
each, composed of the cpu engine's kernels for the body's MLP (norm, product, quick-GELU and
narrowing, product, residual add and norm) and its head (product, frequencies), their
products on the AMX units where the body's are, so they round exactly as the reference's (the
kernel, `pixel_head`, lives with them in integer_cpu).

An encoder knows every input beforehand, so `block` computes several steps in one call, as the
cpu engine's `block` does for ImageGPT: the block's pixels through the body at once (one pass
over the weights for all their rows), then each head over all its rows. The same integers as
that many steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igc.engines import amx
from igc.engines import integer as I
from igc.engines.integer_cpu import CpuEngine, CpuState, pack_weights, pixel_head
from igc.engines.pixel_integer import IntPixelModel
from igc.errors import ModelError


@dataclass
class PixelCpuState:
    body: CpuState  # one position per pixel
    position: int  # subpixels stepped
    known: np.ndarray  # (B, 2) the current pixel's R and G, as given
    stream: np.ndarray  # (B, C) the body's final residual stream at the current pixel
    h: np.ndarray  # (B, C) a head's residual stream


class PixelCpuEngine:
    """The pixel reference engine's frequencies at the cpu engine's speed."""

    name = "cpu"

    def __init__(self, model: IntPixelModel, use_amx: bool | None = None) -> None:
        """use_amx: the weight products (the body's and the heads') on the AMX units (None:
        where usable; the same integers either way)."""
        self.m = model
        self.body = CpuEngine(model.body, use_amx)
        for head in model.heads:  # the heads share the body's buffers, sized for its MLP
            if head.fc.w.shape[1] > self.body.inner or any(
                    np.abs(lin.w).max(initial=0) > I.W_MAX for lin in (head.fc, head.proj, head.out)):
                raise ModelError("a pixel head wider than the body's MLP or with weights beyond "
                                 f"+-{I.W_MAX}: not a numerics 2 pixel model")

        def params(lin: I.Linear) -> np.ndarray:
            return np.stack([lin.m, lin.e, lin.b]).astype(np.int64)

        self.heads, self.heads_amx = [], []
        for head in model.heads:
            embs = np.ascontiguousarray(np.stack(head.embs), np.int64)
            self.heads.append((embs, pack_weights(head.fc.w), params(head.fc),
                               pack_weights(head.proj.w), params(head.proj),
                               pack_weights(head.out.w), params(head.out)))
            self.heads_amx.append(tuple(amx.pack_weights(lin.w) for lin in
                                        (head.fc, head.proj, head.out)) if self.body.amx
                                  else (np.zeros((1, 4), np.int8),) * 3)

    @property
    def amx(self) -> bool:
        """Whether the weight products run on the AMX units."""
        return self.body.amx

    def start(self, batch: int, length: int | None = None) -> PixelCpuState:
        n = self.m.body.n_positions
        pixels = n if length is None else -(-length // 3)
        if pixels > n:
            raise ModelError(f"sequence longer than the model's context of {3 * n}")
        c = self.m.body.n_embd
        return PixelCpuState(self.body.start(batch, pixels), 0, np.zeros((batch, 2), np.int64),
                             np.zeros((batch, c), np.int64), np.zeros((batch, c), np.int64))

    def step(self, state: PixelCpuState, ids: np.ndarray) -> np.ndarray:
        """The previous subpixel of each sequence -> (B, 256) frequencies of the next one."""
        return self._step(state, ids, False)

    def step_logits(self, state: PixelCpuState, ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """As the reference's: the input of the head that ran and its Q16 logits."""
        logits = self._step(state, ids, True)
        c, rows = self.m.body.n_embd, len(logits)
        return state.body.rows["xin"][:rows, :c].astype(np.int64), logits

    def block(self, state: PixelCpuState, ids: np.ndarray) -> np.ndarray:
        """`ids` (B, P): P steps of every sequence at once, all inputs known beforehand (an
        encoder's): (B, P, 256) frequencies, exactly those of P calls of `step`."""
        return self._block(state, ids, False)[1]

    def block_logits(self, state: PixelCpuState, ids: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """As `block`, for `step_logits`: the heads' inputs (B, P, C) and logits (B, P, 256)."""
        return self._block(state, ids, True)

    def _block(self, state: PixelCpuState, ids: np.ndarray, logits: bool
               ) -> tuple[np.ndarray | None, np.ndarray]:
        m, st = self.m, state.body
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ModelError(f"a block takes (batch, positions) integer tokens, got shape "
                             f"{ids.shape} and type {ids.dtype}")
        ids = np.ascontiguousarray(ids, np.int64)
        b, per = ids.shape
        if b != st.batch:
            raise ModelError(f"step got {b} tokens for a cache of batch {st.batch}")
        s0 = state.position
        channel = (s0 + np.arange(per)) % 3
        limit = np.where(channel == 0, 257, 256)  # G's and B's heads read values only
        if ids.size and (ids.view(np.uint64) >= limit.astype(np.uint64)).any():
            raise ModelError("token ids must lie in [0, 257) at a pixel's R and [0, 256) at "
                             "its G and B")
        body_cols = np.flatnonzero(channel == 0)
        if st.position + len(body_cols) > min(st.length, m.body.n_positions):
            raise ModelError("sequence longer than the model's context of "
                             f"{3 * m.body.n_positions}")
        c = m.body.n_embd
        out = np.empty((b, per, 256), np.int64)
        hidden = np.empty((b, per, c), np.int64) if logits else None
        # each column's known channels of its pixel, as the steps would keep them: the R and G
        # a body column reads (the pixel before's), and those a head column reads (its own)
        known, reads = state.known.copy(), []
        for j in range(per):
            if channel[j] == 0:
                reads.append((ids[:, j], ids[:, j]) if s0 + j == 0  # the start: all three
                             else (known[:, 0].copy(), known[:, 1].copy()))
            else:
                known[:, channel[j] - 1] = ids[:, j]
                reads.append(known[:, : channel[j]].copy())
        streams = np.empty((b, len(body_cols), c), np.int64)
        if len(body_cols):
            rg = [reads[j] for j in body_cols]
            r = np.stack([p[0] for p in rg], axis=1)
            g = np.stack([p[1] for p in rg], axis=1)
            x = self._embedded(r, g, ids[:, body_cols], st.position)
            out[:, body_cols] = self.body._block(st, ids[:, body_cols], logits, embedded=x)
            rows = st.rows
            streams[:] = rows["x"][: b * len(body_cols)].reshape(b, len(body_cols), c)
            if logits:
                hidden[:, body_cols] = rows["xin"][: b * len(body_cols), :c].reshape(
                    b, len(body_cols), c)
        # each head column's stream: its pixel's, from this block's body or from before it
        pixel_of = np.cumsum(channel == 0) - 1  # index into body_cols; -1: the pixel before
        for ch in (1, 2):
            cols = np.flatnonzero(channel == ch)
            if not len(cols):
                continue
            n = b * len(cols)
            stream = np.stack([streams[:, pixel_of[j]] if pixel_of[j] >= 0 else state.stream
                               for j in cols], axis=1).reshape(n, c)
            given = np.stack([reads[j] for j in cols], axis=1).reshape(n, ch)
            res = self._head(st, ch, stream, given, np.empty((n, c), np.int64), logits)
            out[:, cols] = res.reshape(b, len(cols), 256)
            if logits:
                hidden[:, cols] = st.rows["xin"][:n, :c].reshape(b, len(cols), c)
        if len(body_cols):
            state.stream[:] = streams[:, -1]
        state.known[:] = known
        state.position = s0 + per
        return hidden, out

    def _step(self, state: PixelCpuState, ids: np.ndarray, logits: bool) -> np.ndarray:
        m, channel, st = self.m, state.position % 3, state.body
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise ModelError(f"one integer token per sequence, got ids of shape {ids.shape} "
                             f"and type {ids.dtype}")
        ids = np.ascontiguousarray(ids, np.int64)
        if len(ids) != st.batch:
            raise ModelError(f"step got {len(ids)} tokens for a cache of batch {st.batch}")
        limit = 257 if channel == 0 else 256  # G's and B's heads read values, never the start
        if ids.size and ids.view(np.uint64).max() >= limit:  # negatives wrap: one pass
            raise ModelError(f"token ids must lie in [0, {limit}) at this step")
        if channel == 0:
            if st.position >= min(st.length, m.body.n_positions):
                raise ModelError("sequence longer than the model's context of "
                                 f"{3 * m.body.n_positions}")
            r, g = (ids, ids) if state.position == 0 else (state.known[:, 0], state.known[:, 1])
            x = self._embedded(r[:, None], g[:, None], ids[:, None], st.position)
            out = self.body._block(st, ids[:, None], logits, embedded=x)[:, 0]
            state.stream[:] = st.rows["x"][: st.batch]
        else:
            state.known[:, channel - 1] = ids
            out = self._head(st, channel, state.stream, state.known[:, :channel], state.h,
                             logits)
        state.position += 1
        return out

    def _embedded(self, r, g, b, pos0: int) -> np.ndarray:
        """The body's input at (B, n) pixels from position pos0 on: the embeddings of the pixel
        before's R, G and B and of the position, summed and saturated, as (B * n, C)."""
        m = self.m
        x = (m.wte_rg[0][r] + m.wte_rg[1][g] + m.body.wte[b]
             + m.body.wpe[pos0 : pos0 + r.shape[1]])
        return np.clip(x, -I.LIM, I.LIM).reshape(-1, m.body.n_embd)

    def _head(self, st: CpuState, channel: int, stream: np.ndarray, known: np.ndarray,
              h: np.ndarray, logits: bool) -> np.ndarray:
        """G's (channel 1) or B's (2) head over rows of `stream` given their known channels:
        (rows, 256) frequencies or logits; the body's row buffer xin[:, :C] then holds the
        output product's input. h: (rows, C) scratch."""
        m, rows = self.m, len(stream)
        embs, w_fc, p_fc, w_proj, p_proj, w_out, p_out = self.heads[channel - 1]
        buf = self.body._rows(st, rows)
        out = np.empty((rows, 256), np.int64)
        pixel_head(stream, known, embs, m.body.eps, np.int64(m.body.norm_frac), w_fc, p_fc,
                   w_proj, p_proj, w_out, p_out, st.u, buf["xin"], buf["acc"], buf["frac"], h,
                   out, logits, self.body.amx, self.heads_amx[channel - 1], st.tiles)
        return out
