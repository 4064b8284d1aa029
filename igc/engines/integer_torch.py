"""Numerics 2 on torch: `ReferenceEngine`'s integer step on any torch device, bit for bit.

`TorchEngine` computes exactly the frequencies of `igc.engines.integer.ReferenceEngine` (the
definition), on the CPU (how the tests run it) or on a GPU, where all tiles of an image step as
one batch (scripts/cuda_check.py checks it there and times it):

* every value is an integer (or one times a power of two) held in float64, and every operation
  on it is exact: products and sums stay below 2**53 (integer.py), and IEEE-754 `+ - * / sqrt
  floor` are correctly rounded everywhere, so they return the exact result where it is
  representable (divisors are tensors: CUDA turns a division by a host scalar into a reciprocal
  product). Weight and attention products are float64 `matmul`/`bmm` (exact in any order, no
  TF32); integer division, shifts and tables run on int64 tensors;
* where the reference rounds `v * 2**-s` half up (`shift_round`), this engine folds `2**-s` into
  the operands (a weight column, a query row, a cached key) and takes `floor(x + 0.5)`, which is
  exact while `|v| + 2**(s-1) < 2**53`; each place states why its shifts stay in range, and a
  linear layer whose scales leave that range runs the reference's int64 rule instead;
* the step has a fixed shape: attention covers a fixed span of the preallocated cache (the next
  multiple of `span_step`), later positions masked out (weight exactly 0, left out of the
  maximum), the position on the device, nothing waiting for the host: on CUDA each span's step
  is captured once in a CUDA graph and replayed;
* `frequencies_all` runs the same integer rules over whole sequences at once (what an encoder,
  which knows every token, can do): causal attention over every position, chunks of rows to bound
  memory. Integer arithmetic makes it equal to stepping bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from igc.engines.integer import (
    ACT_MAX,
    ATT_BITS,
    EXP_BITS,
    FX,
    GELU_FRAC,
    GELU_HALF,
    LIM,
    NORM_EPS_SHIFTS,
    SCORE_FRAC,
    SCORE_LIM,
    SIG_BITS,
    TOTAL_BITS,
    W_MAX,
    IntModel,
    Linear,
    exp_table,
    sigmoid_table,
)
from igc.engines.runtime import one_thread
from igc.errors import ModelError

F64 = torch.float64
EXACT = 1 << 53
# Narrowed rows: a row's largest |value| has E bits (frexp's exponent, 0 for a zero row, at most
# 41 for Q16 values saturated at 2**40); the reference's shift for it is E - 15 (0 for E = 0).
E_RANGE = 64
SHIFT_OF_E = np.array([0] + [e - 15 for e in range(1, E_RANGE)], np.int64)
NARROW_SHIFTS = (-14, 26)  # the shifts a narrowed row can have (E = 1 .. 41)
SCORE_SHIFT = 2 * FX - SCORE_FRAC  # attention scores: dots * 2**-(20 - sq - sk)
ZERO_SCORE = SCORE_SHIFT + 31  # sq + sk >= 51 leaves the reference's saturation bound 0: score 0
MASKED = -float(1 << 31)  # below every score (>= -2**30): loses the maximum, weighs exactly 0
ZCAP = 31 << SCORE_FRAC  # exp2_neg(z) is 0 (Q30, and so Q20) for every z >= 31 * 4096


def _pow2(n) -> np.ndarray:
    """2.0**n exactly (float64)."""
    return np.ldexp(1.0, np.asarray(n, np.int64))


def _exp_flat() -> np.ndarray:
    """exp2_neg(z) for z = 0 .. ZCAP as one table (the last entry, 0, stands for every z above)."""
    z = np.arange(ZCAP + 1, dtype=np.int64)
    out = exp_table()[z & ((1 << SCORE_FRAC) - 1)] >> np.minimum(z >> SCORE_FRAC, 62)
    out[-1] = 0
    return out


def take(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for an int32 or int64 index of any shape (index_select takes both, on every
    device, without a host sync)."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, *table.shape[1:])


def _shift_round_int(v: torch.Tensor, s: torch.Tensor, lim: int) -> torch.Tensor:
    """`integer.shift_round` on int64 tensors with NumPy's semantics for every shift (a shift
    of 64 or more empties a left shift and sign-fills a right one), whatever torch does there."""
    right = s.clamp(min=1)
    half = torch.where(right <= 64, torch.ones_like(right) << (right - 1).clamp(max=63), 0)
    down = (v + half) >> right.clamp(max=63)
    left = (-s).clamp(0, 62)
    bound = torch.full_like(left, lim) >> left
    up = torch.maximum(torch.minimum(v, bound), -bound) << left
    return torch.where(s > 0, down, up).clamp(-lim, lim)


class ExactLinear:
    """One `integer.Linear` on the device. `frac` is the input's fraction bits (None: given per
    row at call time, as `FX - shift` of a narrowed row with shift in NARROW_SHIFTS).

    Fast path: y = floor(h @ W' + 0.5) with W'[:, j] = w_j * m_j * 2**-s_j (per-row shifts fold
    2**shift into the rows instead), exact when every partial sum, an integer A (|A| <= ACT_MAX *
    m_j * sum|w_j|) times the column's power of two, has |A| + 2**(s-1) < 2**53, i.e. s <= 52
    and |A| < 2**52, and when s >= -40 (below that the reference's saturation bound LIM >> -s is
    0 and it returns 0). Otherwise the int64 rule of the reference."""

    def __init__(self, lin: Linear, frac: int | None, dev: torch.device) -> None:
        w = lin.w.astype(np.float64)
        m, e = lin.m.astype(np.int64), lin.e.astype(np.int64)
        self.per_row = frac is None
        if self.per_row:
            lo, hi = NARROW_SHIFTS
            s_min, s_max = e - hi, e - lo
            s = e
        else:
            s = e + frac - FX
            s_min = s_max = s
        used = m > 0
        a_max = ACT_MAX * m * np.abs(lin.w).sum(axis=0)
        self.fast = bool(np.all(~used | ((s_min >= -40) & (s_max <= 52) & (a_max < (1 << 52)))))
        self.b = torch.from_numpy(lin.b.astype(np.float64)).to(dev)
        if self.fast:
            self.w = torch.from_numpy(np.ldexp(w * m, -np.where(used, s, 0))).to(dev)
            # with every s >= 1 the + 0.5 can join the product (partial sums stay exact)
            self.half = (torch.full((len(m),), 0.5, dtype=F64, device=dev)
                         if np.all(~used | (s_min >= 1)) else None)
            # floor(x + 0.5) <= A * 2**-s + 1: when that is within LIM, its clamp is a no-op
            top = np.ldexp(a_max.astype(np.float64), -np.minimum(s_min, 60)) + 1
            self.clamp = bool(np.any(used & (top > LIM)))
            return
        self.fold = bool(lin.w.shape[0] * ACT_MAX * W_MAX * max(int(m.max(initial=0)), 1) < EXACT)
        self.w = torch.from_numpy(w * m if self.fold else w).to(dev)
        self.m = torch.from_numpy(m).to(dev)
        self.s = torch.from_numpy((e if self.per_row else s)[None, :].copy()).to(dev)

    def __call__(self, h: torch.Tensor, shift: torch.Tensor | None = None,
                 scale: torch.Tensor | None = None) -> torch.Tensor:
        """h (N, in): integer-valued float64 with `frac` fraction bits, or for a per-row layer
        narrowed values with (N,) int shifts `shift` and `scale` = 2**shift (float64). -> Q16
        (N, out) as float64 integers."""
        if self.fast:
            if self.per_row:
                h = h * scale.unsqueeze(-1)
            if self.half is not None:
                y = torch.addmm(self.half, h, self.w).floor_()
            else:
                y = (h @ self.w).add_(0.5).floor_()
            if self.clamp:
                y = y.clamp_(-LIM, LIM)
        else:
            acc = (h @ self.w).long()
            if not self.fold:
                acc = acc * self.m
            s = self.s - shift.long().unsqueeze(-1) if self.per_row else self.s
            y = _shift_round_int(acc, s, LIM).double()
        return y.add_(self.b).clamp_(-LIM, LIM)


@dataclass
class _Layer:
    qkv: ExactLinear
    proj: ExactLinear
    fc: ExactLinear
    mlp_proj: ExactLinear
    v_scale: torch.Tensor  # (C,) 2**-v_shift


@dataclass
class TorchState:
    """One batch's cache on the device: keys held scaled, k * 2**shift (q . k comes out of `bmm`
    already scaled), their shifts as int16, values as float64 integers; then the step's fixed
    buffers, which a CUDA graph reads and writes in place."""

    keys: list[torch.Tensor]  # (B*H, L, D) float64
    key_shift: list[torch.Tensor]  # (B*H, L) int16
    values: list[torch.Tensor]  # (B*H, L, D) float64
    ids: torch.Tensor  # (B,) int64
    pos: torch.Tensor  # (1,) int64
    out: torch.Tensor  # (B, V) int64
    hidden: torch.Tensor  # (B, C) float64: the head's input (a `step_logits` step)
    logits: torch.Tensor  # (B, V) float64: its Q16 logits (a `step_logits` step)
    position: int
    batch: int
    length: int
    graphs: dict = field(default_factory=dict)
    pool: object = None
    # a step given its embedded input (a pixel model's body, igc.engines.pixel_torch): the
    # input (B, C) float64 Q16, read by the step, and the final residual stream it leaves
    x_in: torch.Tensor | None = None
    stream: torch.Tensor | None = None


class TorchEngine:
    """ReferenceEngine's frequencies, bit for bit, with torch on `device` ("cuda", "cpu", ...).

    On CUDA each attended span's step is a CUDA graph (`graph=False`: eager); `span_step` is its
    granularity (None: the full cache); `chunk_bytes` bounds `frequencies_all`'s scratch."""

    def __init__(self, model: IntModel, device="cuda", graph: bool | None = None,
                 span_step: int | None = 64, chunk_bytes: int | None = None) -> None:
        self.m = model
        self.device = dev = torch.device(device)
        self.cuda = dev.type == "cuda"
        self.name = "cuda" if self.cuda else f"torch-{dev.type}"
        self.graph = self.cuda if graph is None else bool(graph) and self.cuda
        self.span_step = span_step
        self.chunk_bytes = chunk_bytes or ((8 << 30) if self.cuda else (512 << 20))
        c, nf = model.n_embd, model.norm_frac

        def t(a, dtype=None) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device=dev, dtype=dtype)

        self.wte = t(model.wte.astype(np.float64))
        self.wpe = t(model.wpe.astype(np.float64))
        self.layers = [
            _Layer(ExactLinear(lay.qkv, nf, dev), ExactLinear(lay.proj, 0, dev), ExactLinear(lay.fc, nf, dev),
                   ExactLinear(lay.mlp_proj, None, dev), t(_pow2(-lay.v_shift)))
            for lay in model.layers]
        self.head = ExactLinear(model.head, nf, dev)
        sh = SHIFT_OF_E
        self.e_shift = t(sh.astype(np.int16))  # E -> the row's shift
        self.e_down = t(_pow2(-sh))  # E -> 2**-shift
        self.e_up = t(_pow2(sh))  # E -> 2**shift
        self.e_query = t(_pow2(sh - SCORE_SHIFT))  # E -> a query row's factor 2**(shift - 20)
        self.e_zero = t((ZERO_SCORE - sh).astype(np.int16))  # E -> key shifts giving score 0
        self.e_eps = t(model.eps[np.clip(sh - NORM_EPS_SHIFTS.start, 0, len(model.eps) - 1)])
        self.j_bounds = t(np.array([1 << (40 + 2 * i) for i in range(1, 12)], np.int64))
        self.norm_num = t(np.float64(1 << (nf + 11)))  # round_div(u << (nf + 10), r)
        self.c = c
        self.half = t(np.float64(0.5))
        self.gelu_in = t(np.float64(2.0 ** -(FX - GELU_FRAC)))
        self.gelu_at = t(np.float64(GELU_HALF + 1.5))
        self.freq_in = t(np.float64(2.0 ** -(FX - SCORE_FRAC)))
        flat = _exp_flat()
        self.exp30 = t(flat)  # Q30, for the output's frequencies
        self.exp20 = t((flat >> (EXP_BITS - ATT_BITS)).astype(np.float64))  # attention weights
        # quick-GELU: index clamp(i + GELU_HALF + 1, 0, 2 * GELU_HALF + 1); entry 0 (below the
        # table) is 0, the last (above it) is 1, the rest sigmoid * 2**-15 (exact)
        sig = np.concatenate([[0], sigmoid_table(), [1 << SIG_BITS]]).astype(np.float64)
        self.gelu_sig = t(np.ldexp(sig, -SIG_BITS))
        self.vocab = model.vocab
        self.arange_v = torch.arange(model.vocab, device=dev)
        self._warmed = False

    # -- rules (float64 tensors hold integers, or integers times a power of two) -------------
    def _round(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """floor(x * scale + 0.5) for a power-of-two `scale`: `shift_round` when exact."""
        return torch.addcmul(self.half, x, scale).floor_()

    def _top_bits(self, v: torch.Tensor) -> torch.Tensor:
        """bit_length of each row's largest |value| (|v| < 2**53: frexp's exponent, 0 for 0),
        int32: it indexes the e_* tables."""
        top = torch.linalg.vector_norm(v, float("inf"), dim=-1)  # max |v|, exactly
        return torch.frexp(top).exponent

    def _narrow(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`integer.narrow` of Q16 rows (float64, |v| <= 2**40) -> (values, E per row): the
        shift is e_shift[E]; v * 2**-shift is exact and so is floor(. + 0.5) (|v| < 2**41)."""
        e = self._top_bits(v)
        return self._round(v, take(self.e_down, e).unsqueeze(-1)).clamp_(-ACT_MAX, ACT_MAX), e

    @staticmethod
    def _isqrt(n: torch.Tensor) -> torch.Tensor:
        """floor(sqrt(n)) for int64 0 <= n < 2**62: the float64 root is within 2**-21 of the
        true one, so one correction each way makes it exact."""
        r = torch.sqrt(n.double()).long()
        r = r - (r * r > n).long()
        up = r + 1
        return r + (up * up <= n).long()

    def _rms_norm(self, x: torch.Tensor) -> torch.Tensor:
        """`integer.rms_norm`: (N, C) Q16 float64 -> (N, C) values with norm_frac bits."""
        e = self._top_bits(x)
        u = self._round(x, take(self.e_down, e).unsqueeze(-1))  # shift_round(x, k), <= 2**15
        den = (u * u).sum(dim=-1).long() + take(self.e_eps, e)  # the sum is exact (< 2**53)
        j = (den.unsqueeze(-1) >= self.j_bounds).sum(dim=-1)  # max(bit_length(den) - 41, 0) // 2
        r = (self._isqrt(((den >> (2 * j)) << 20) // self.c) << j).clamp_(min=1).double()
        r = r.unsqueeze(-1)
        # round_div(u << (nf + 10), r) = floor((2a + r) / 2r) with |2a + r| < 2**43: the
        # correctly rounded quotient of integers below 2**53 never crosses an integer, so its
        # floor is exact
        y = torch.addcmul(r, u, self.norm_num).div_(2 * r).floor_()
        return y.clamp_(-ACT_MAX, ACT_MAX)

    def _quick_gelu(self, f: torch.Tensor) -> torch.Tensor:
        """`integer.quick_gelu` of Q16 float64: i = floor(f / 64 + 0.5) picks the table entry
        (clamped to the two ends standing for 0 and f); f * sig is exact inside the table
        (|f| < 2**20), f * 1 above it."""
        i = torch.addcmul(self.gelu_at, f, self.gelu_in).floor_()  # i + GELU_HALF + 1
        sig = take(self.gelu_sig, i.clamp_(0, 2 * GELU_HALF + 1).int())
        return self._round(f, sig)

    def _frequencies(self, logits: torch.Tensor) -> torch.Tensor:
        """`integer.frequencies` of (N, V) Q16 float64 logits -> (N, V) int64."""
        d = logits.amax(dim=-1, keepdim=True) - logits  # >= 0
        z = self._round(d, self.freq_in).clamp_(max=min(SCORE_LIM, ZCAP)).long()
        e = take(self.exp30, z)
        total = e.sum(dim=-1, keepdim=True)
        f = 1 + (e * ((1 << TOTAL_BITS) - self.vocab)) // total
        # argmax of e (its first): e is 2**30 exactly where z == 0 and below it elsewhere
        first = torch.where(z == 0, self.arange_v, self.vocab).amin(dim=-1, keepdim=True)
        return f.scatter_add_(1, first, (1 << TOTAL_BITS) - f.sum(dim=-1, keepdim=True))

    def _attend(self, q, q_e, keys, key_shift, values, invalid) -> torch.Tensor:
        """Attention of queries (N, P, D) (narrowed values, E per row (N, P)) over keys (N, T, D)
        (scaled by 2**shift, shifts (N, T)) and values (N, T, D); `invalid` (P, T) or (T,) says
        which keys each query must not see -> (N, P, D) float64 integers.

        q * 2**(sq - 20) . k * 2**sk = dots * 2**-s with s = 20 - sq - sk in [-32, 48], every
        partial sum an integer below 2**36 times 2**-s: exact, and floor(. + 0.5) of it is the
        reference's rounding (|dots| + 2**47 < 2**53); for s <= -31 the reference gives 0."""
        x = torch.bmm(q * take(self.e_query, q_e).unsqueeze(-1), keys.transpose(1, 2))
        scores = x.add_(0.5).floor_().clamp_(-SCORE_LIM, SCORE_LIM)
        scores.masked_fill_(key_shift.unsqueeze(1) >= take(self.e_zero, q_e).unsqueeze(-1), 0.0)
        scores.masked_fill_(invalid, MASKED)
        z = torch.sub(scores.amax(dim=-1, keepdim=True), scores, out=scores)
        e = take(self.exp20, z.clamp_(max=ZCAP).int())  # exp2_neg(z) >> 10; 0 where invalid
        mixed = torch.bmm(e, values)  # exact: below 768 * 2**20 * 2**15
        den = e.sum(dim=-1, keepdim=True)
        # round_div: floor((2 mixed + den) / 2 den), integers below 2**53 (see _rms_norm)
        return torch.add(den, mixed, alpha=2).div_(2 * den).floor_()

    def _block(self, x: torch.Tensor, lay: _Layer, attend) -> torch.Tensor:
        """One transformer block on Q16 rows (N, C); `attend(q, q_e, k, k_shift, v)` (each
        (N*H, D) / (N*H,), v as (N, C)) returns the attention output (N, C)."""
        n, c, heads, d = x.shape[0], self.c, self.m.n_head, self.m.head_dim
        qkv = lay.qkv(self._rms_norm(x))
        qk, qk_e = self._narrow(qkv[:, : 2 * c].reshape(n, 2, heads, d))  # queries and keys
        q, k = qk[:, 0].reshape(n * heads, d), qk[:, 1].reshape(n * heads, d)
        q_e, k_e = qk_e[:, 0].reshape(n * heads), qk_e[:, 1].reshape(n * heads)
        # values: shift_round by the per-channel v_shift (in [-30, 27]) and clip to int16
        v = self._round(qkv[:, 2 * c :], lay.v_scale).clamp_(-ACT_MAX, ACT_MAX)
        a = attend(q, q_e, k * take(self.e_up, k_e).unsqueeze(-1), take(self.e_shift, k_e), v)
        x = lay.proj(a).add_(x).clamp_(-LIM, LIM)
        f = self._quick_gelu(lay.fc(self._rms_norm(x)))
        g, g_e = self._narrow(f)
        y = lay.mlp_proj(g, take(self.e_shift, g_e), take(self.e_up, g_e))
        return y.add_(x).clamp_(-LIM, LIM)

    # -- stepping ---------------------------------------------------------------------------
    def start(self, batch: int, length: int | None = None) -> TorchState:
        length = length or self.m.n_positions
        if not 1 <= length <= self.m.n_positions:
            raise ModelError(f"cache length {length} outside 1..{self.m.n_positions}")
        bh, d, n, dev = batch * self.m.n_head, self.m.head_dim, len(self.layers), self.device
        return TorchState(
            [torch.zeros((bh, length, d), dtype=F64, device=dev) for _ in range(n)],
            [torch.zeros((bh, length), dtype=torch.int16, device=dev) for _ in range(n)],
            [torch.zeros((bh, length, d), dtype=F64, device=dev) for _ in range(n)],
            torch.zeros(batch, dtype=torch.long, device=dev),
            torch.zeros(1, dtype=torch.long, device=dev),
            torch.zeros((batch, self.vocab), dtype=torch.long, device=dev),
            torch.zeros((batch, self.m.n_embd), dtype=F64, device=dev),
            torch.zeros((batch, self.vocab), dtype=F64, device=dev),
            0, batch, length)

    def reset(self, state: TorchState) -> None:
        """Start `state` over (new sequences, same batch): its CUDA graphs are kept. What the
        cache still holds lies beyond the position and is masked until overwritten."""
        state.position = 0

    def span(self, position: int, length: int) -> int:
        """Cache positions the step at `position` attends over (masked beyond `position`)."""
        if not self.span_step:
            return length
        return min(length, (position // self.span_step + 1) * self.span_step)

    def _step_into(self, st: TorchState, span: int, logits: bool = False,
                   embedded: bool = False) -> None:
        """The step on the state's buffers: reads ids and pos, writes the cache at pos and
        `out` (`logits`: `hidden` and `logits` instead). No host synchronisation, fixed shapes
        for a given span (graph-capturable), and idempotent (running it twice leaves the same
        state), so warm-up runs are harmless. `embedded`: the input is `x_in` rather than the
        ids' embedding, and the final residual stream is kept in `stream`."""
        heads, d = self.m.n_head, self.m.head_dim
        if embedded:
            x = st.x_in  # read only: every operation below makes a new tensor from x
        else:
            x = (self.wte.index_select(0, st.ids)
                 + self.wpe.index_select(0, st.pos)).clamp_(-LIM, LIM)
        invalid = torch.arange(span, device=self.device) > st.pos

        for i, lay in enumerate(self.layers):
            def attend(q, q_e, k, k_shift, v, i=i):
                st.keys[i].index_copy_(1, st.pos, k.unsqueeze(1))
                st.key_shift[i].index_copy_(1, st.pos, k_shift.unsqueeze(1))
                st.values[i].index_copy_(1, st.pos, v.reshape(-1, 1, d))
                a = self._attend(q.unsqueeze(1), q_e.unsqueeze(1), st.keys[i][:, :span],
                                 st.key_shift[i][:, :span], st.values[i][:, :span], invalid)
                return a.reshape(st.batch, heads * d)

            x = self._block(x, lay, attend)
        if embedded:
            st.stream.copy_(x)
        h = self._rms_norm(x)
        if logits:
            st.hidden.copy_(h)
            st.logits.copy_(self.head(h))
        else:
            st.out.copy_(self._frequencies(self.head(h)))

    def _capture(self, st: TorchState, span: int, logits: bool = False,
                 embedded: bool = False):
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # per torch's recipe; later spans need less warming
            for _ in range(1 if self._warmed else 3):
                self._step_into(st, span, logits, embedded)
        self._warmed = True
        torch.cuda.current_stream(self.device).wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, pool=st.pool):
            self._step_into(st, span, logits, embedded)
        if st.pool is None:
            st.pool = g.pool()
        return g

    def step_tensor(self, state: TorchState, ids: torch.Tensor) -> torch.Tensor:
        """One token per sequence (a (B,) integer tensor, any device; not range-checked) ->
        (B, V) int64 frequencies on the engine's device (a new tensor)."""
        self._advance(state, ids, False)
        return state.out.clone()

    def step_logits(self, state: TorchState, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As `ReferenceEngine.step_logits`: the head's input and its Q16 logits, as int64."""
        self._advance(state, torch.from_numpy(self._checked(ids)), True)
        return state.hidden.long().cpu().numpy(), state.logits.long().cpu().numpy()

    def _checked(self, ids: np.ndarray) -> np.ndarray:  # host ids, range-checked
        ids = np.asarray(ids, np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.m.wte)):
            raise ModelError(f"token ids must lie in 0..{len(self.m.wte) - 1}")
        return ids

    @torch.no_grad()
    def _advance(self, state: TorchState, ids: torch.Tensor | None, logits: bool) -> None:
        """One step of every sequence; `ids` None: of their embedded inputs, which the caller
        wrote into `x_in` (a pixel model's body)."""
        pos = state.position
        if pos >= state.length:
            raise ModelError(f"sequence longer than the model's context of {self.m.n_positions}")
        embedded = ids is None
        if not embedded:
            if ids.shape != (state.batch,):
                raise ModelError(f"step got {tuple(ids.shape)} tokens for a cache of batch "
                                 f"{state.batch}")
            state.ids.copy_(ids)
        state.pos.fill_(pos)
        span = self.span(pos, state.length)
        if self.graph:
            key = (span, logits, embedded)
            g = state.graphs.get(key)
            if g is None:
                g = state.graphs[key] = self._capture(state, span, logits, embedded)
            g.replay()
        elif self.cuda:
            self._step_into(state, span, logits, embedded)
        else:  # small products: threads only add waits (and sharded processes oversubscribe)
            with one_thread():
                self._step_into(state, span, logits, embedded)
        state.position = pos + 1

    def step(self, state: TorchState, ids: np.ndarray) -> np.ndarray:
        """One token per sequence -> (B, V) int64 frequencies of the next token."""
        return self.step_tensor(state, torch.from_numpy(self._checked(ids))).cpu().numpy()

    # -- whole sequences --------------------------------------------------------------------
    def rows_per_chunk(self, rows: int, length: int) -> int:
        """Sequences `frequencies_all` takes at once: about 6 float64 (H, L, L) attention
        temporaries and 64 (L, C) row tensors each, within `chunk_bytes`."""
        per_row = 8 * (6 * self.m.n_head * length * length + 64 * length * self.c)
        return max(1, min(rows, self.chunk_bytes // per_row))

    @torch.no_grad()
    def frequencies_all(self, tokens: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """(B, L) int64 tokens -> (B, L, V) int64: position p's frequencies for tokens[:, p]
        given the start token and tokens[:, :p], exactly as stepping gives them."""
        tokens = np.asarray(tokens, np.int64)
        if tokens.ndim != 2:
            raise ModelError(f"frequencies_all takes (sequences, length) tokens, got "
                             f"{tokens.shape}")
        b, length = tokens.shape
        if length > self.m.n_positions:
            raise ModelError(f"sequence longer than the model's context of {self.m.n_positions}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= len(self.m.wte)):
            raise ModelError(f"token ids must lie in 0..{len(self.m.wte) - 1}")
        out = np.empty((b, length, self.vocab), np.int64)
        if b == 0 or length == 0:
            return out
        chunk = chunk or self.rows_per_chunk(b, length)
        start = self.vocab  # ImageGPT's start token is its last id: 256 for subpixels, 512 palette
        inputs = np.concatenate([np.full((b, 1), start, np.int64), tokens[:, :-1]], 1)
        future = torch.ones((length, length), dtype=torch.bool, device=self.device).triu_(1)
        for lo in range(0, b, chunk):
            ids = torch.from_numpy(inputs[lo : lo + chunk]).to(self.device)
            out[lo : lo + chunk] = self._all(ids, future).cpu().numpy()
        return out

    def _all(self, ids: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        r, length = ids.shape
        heads, d, c = self.m.n_head, self.m.head_dim, self.c
        x = (take(self.wte, ids) + self.wpe[:length]).clamp_(-LIM, LIM).reshape(r * length, c)

        def heads_first(t: torch.Tensor) -> torch.Tensor:  # (R*L*H, ...) -> (R*H, L, ...)
            t = t.reshape(r, length, heads, *t.shape[1:]).transpose(1, 2)
            return t.reshape(r * heads, length, *t.shape[3:])

        def attend(q, q_e, k, k_shift, v):
            a = self._attend(heads_first(q), heads_first(q_e), heads_first(k),
                             heads_first(k_shift), heads_first(v.reshape(-1, d)), future)
            return a.reshape(r, heads, length, d).transpose(1, 2).reshape(r * length, c)

        for lay in self.layers:
            x = self._block(x, lay, attend)
        f = self._frequencies(self.head(self._rms_norm(x)))
        return f.reshape(r, length, self.vocab)

