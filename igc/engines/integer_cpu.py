"""Numerics 2 on the CPU, fast: the reference's integers (igc/engines/integer.py), bit for bit.

A step is one numba call (nogil, so lanes stepping on threads run in parallel), with no BLAS:

* Weight products multiply int16-range activations by int8 weights with pmaddwd (int16 pairs
  multiplied and added into int32 lanes, exact; VNNI fuses the accumulation), emitted by
  igc/engines/simd.py as the AVX-512 or AVX2 intrinsic where numba compiles for such a CPU and
  as plain vector IR (exact all the same) elsewhere. Weights are stored as [input pair][output
  channel][2] int8, widened as they are loaded; up to eight rows share each load. A lane adds at most 256 pairs, each below
  2 * 32767 * 127, so it cannot overflow; longer inputs are summed in int64 by chunks.
  On a CPU with AMX the same sums run on its tiles instead (igc/engines/amx.py).
* Attention reads an int16 cache laid out for the same instruction: keys as blocks of 16
  positions of [channel pair][position][2], values as [position pair][channel][2]. q is split
  into its high and low bytes and the softmax weights (Q20) into their high and low 10 bits,
  so that every int32 lane stays in range; lanes are widened to int64 before they are combined.
* Everything else is scalar int64 code, one rule of the reference per helper, with NumPy's
  semantics reproduced where they matter (shifts by 64 or more, floor division), written so
  that LLVM vectorises it (integer sums are associative, so no fast-math is involved).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from igc.engines import amx
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
    sigmoid_table,
)
from igc.engines.kernel_cache import njit
from igc.engines.scalars import OPTS as _OPTS
from igc.engines.scalars import bit_length as _bit_length
from igc.engines.scalars import exp2_neg as _exp2_neg
from igc.engines.scalars import floor_div as _floor_div
from igc.engines.scalars import isqrt as _isqrt
from igc.engines.scalars import row_shift as _row_shift
from igc.engines.scalars import shift_round as _shift_round
from igc.engines.scalars import shift_round_small as _shift_round_small
from igc.engines.simd import dot_pairs_blocks, product_rows
from igc.errors import ModelError

_EPS0 = -NORM_EPS_SHIFTS.start  # eps[k + _EPS0] is the eps of row shift k
SIG = sigmoid_table()
KEY_BLOCK = 16  # positions per block of the key cache: one SIMD group of int32 lanes
PAIRS_MM = 256  # input pairs per int32 sum of a weight product: 256 * 2 * 32767 * 127 < 2**31
PAIRS_QK = 64  # channel pairs per int32 sum of q . k: 64 * 2 * 255 * 32767 < 2**31
PAIRS_AV = 32  # position pairs per int32 sum of weights x values: 32 * 2 * 1024 * 32767 < 2**31


# -- weight products: the SIMD helpers of igc/engines/simd.py, in four shapes ---------------
_product_8 = product_rows(8, 1)
_product_4 = product_rows(4, 1)
_product_1x4 = product_rows(1, 4)
_product_1 = product_rows(1, 1)
# -- attention's sums: one block of 16 lanes (q . k, 16 positions), two (a value row's 32
# channels in one sweep of the cache) -------------------------------------------------------
_dot_1 = dot_pairs_blocks(1)
_dot_2 = dot_pairs_blocks(2)


@njit(**_OPTS)
def _linear(x, w, out):
    """out[:, :N] = x @ W exactly, int64: x (B, >= 2 K2) int16-range values (past the input's
    width: anything, its weights are 0), w (K2, 2 Npad) W packed by `pack_weights`, out
    (B, >= Npad). Groups of 64 output channels outside, rows inside, so that a group's weights
    are read from memory once and from cache for the other rows; rows go in eights, fours,
    then singly (a single row takes four blocks of 16 channels at once)."""
    rows, xs, os = x.shape[0], x.shape[1], out.shape[1]
    k2, ws = w.shape[0], w.shape[1]
    for j0 in range(0, ws // 2, 64):
        blocks = min(4, (ws // 2 - j0) // 16)
        r = 0
        while r < rows:
            g = 8 if rows - r >= 8 else 4 if rows - r >= 4 else 1
            for c in range(0, k2, PAIRS_MM):
                n = min(PAIRS_MM, k2 - c)
                xb = r * xs + 2 * c
                if g == 1 and blocks == 4:
                    _product_1x4(w, c * ws + 2 * j0, ws, n, x, xb, xs, out, r * os + j0, os, c)
                    continue
                for j in range(j0, j0 + 16 * blocks, 16):
                    wb, ob = c * ws + 2 * j, r * os + j
                    if g == 8:
                        _product_8(w, wb, ws, n, x, xb, xs, out, ob, os, c)
                    elif g == 4:
                        _product_4(w, wb, ws, n, x, xb, xs, out, ob, os, c)
                    else:
                        _product_1(w, wb, ws, n, x, xb, xs, out, ob, os, c)
            r += g


@njit(inline="always", **_OPTS)
def _product(x, w, wa, amx_on, out, tiles):
    """`_linear`'s sums, on the AMX units where the engine chose them (same integers)."""
    if amx_on:
        hi, lo, sums, cfg = tiles
        amx.linear(x, 2 * w.shape[0], wa, w.shape[1] // 2, out, hi, lo, sums, cfg)
    else:
        _linear(x, w, out)


def pack_weights(w: np.ndarray) -> np.ndarray:
    """(K, N) int8-range weights -> (ceil(K/2), 2 * ceil16(N)) int8: [input pair][channel][2],
    zero-padded."""
    k, n = w.shape
    k2, npad = (k + 1) // 2, -(-n // 16) * 16
    out = np.zeros((2 * k2, npad), np.int8)
    out[:k, :n] = w
    return np.ascontiguousarray(out.reshape(k2, 2, npad).transpose(0, 2, 1)).reshape(k2, -1)


# -- the stretches between weight products ---------------------------------------------------
@njit(inline="always", **_OPTS)
def _requant(acc: np.ndarray, p: np.ndarray, frac: np.int64, out: np.ndarray) -> None:
    """integer.linear after the product, one row: exact sums acc -> Q16 out. p: the layer's
    (m, e, b) rows."""
    n = p.shape[1]
    lo_e, hi_e = p[1, 0], p[1, 0]
    for j in range(n):
        lo_e, hi_e = min(lo_e, p[1, j]), max(hi_e, p[1, j])
    if lo_e + frac - FX >= -62 and hi_e + frac - FX <= 63:  # always, for trained weights
        for j in range(n):
            t = _shift_round_small(acc[j] * p[0, j], p[1, j] + frac - FX, LIM) + p[2, j]
            out[j] = min(max(t, -LIM), LIM)
    else:
        for j in range(n):
            t = _shift_round(acc[j] * p[0, j], p[1, j] + frac - FX, LIM) + p[2, j]
            out[j] = min(max(t, -LIM), LIM)


@njit(inline="always", **_OPTS)
def _norm_row(x: np.ndarray, eps: np.ndarray, nf: np.int64, u: np.ndarray,
              out: np.ndarray) -> None:
    """integer.rms_norm of one Q16 row x into out (int16, `nf` fraction bits); u: scratch."""
    c = x.shape[0]
    top = np.int64(0)
    for i in range(c):
        top = max(top, abs(x[i]))
    k = _bit_length(top) - 15 if top > 0 else np.int64(0)
    den = np.int64(0)
    for i in range(c):
        u[i] = _shift_round_small(x[i], k, LIM)  # -14 <= k <= 26
        den += u[i] * u[i]
    den += eps[k + _EPS0]
    j = max(_bit_length(den) - 41, 0) // 2
    r = max(_isqrt(((den >> (2 * j)) << 20) // c) << j, 1)
    for i in range(c):  # round_div: |numerator| < 2**41
        out[i] = min(max(_floor_div(2 * (u[i] << (nf + 10)) + r, 2 * r), -ACT_MAX), ACT_MAX)


@njit(**_OPTS)
def _residual_norm(acc, p, frac, x, eps, nf, u, xin):
    """x += linear's output (row b's input had frac[b] fraction bits), saturated; the next
    product's input is rms_norm(x)."""
    c = x.shape[1]
    for b in range(x.shape[0]):
        _requant(acc[b], p, frac[b], u[:c])
        for i in range(c):
            x[b, i] = min(max(x[b, i] + u[i], -LIM), LIM)
        _norm_row(x[b], eps, nf, u[:c], xin[b])


@njit(**_OPTS)
def _gelu_narrow(acc, p, nf, u, frac, xin):
    """quick_gelu(linear(h)), narrowed: the next product's input, and frac[b] = FX - shift
    (its fraction bits)."""
    n = p.shape[1]
    row = u[:n]
    for b in range(frac.shape[0]):
        _requant(acc[b], p, nf, row)
        for j in range(n):
            v = row[j]
            i = _shift_round_small(v, FX - GELU_FRAC, LIM)
            g = _shift_round_small(v * SIG[min(max(i + GELU_HALF, 0), 2 * GELU_HALF - 1)],
                                   SIG_BITS, LIM)
            row[j] = v if i >= GELU_HALF else (g if i >= -GELU_HALF else 0)
        sg = _row_shift(row, 0, n)
        for j in range(n):
            xin[b, j] = min(max(_shift_round_small(row[j], sg, LIM), -ACT_MAX), ACT_MAX)
        frac[b] = FX - sg


@njit(inline="always", **_OPTS)
def _store(qkv, c, d, heads, v_shift, b, pos, keys, key_shift, values, kblock, vrow, qn, qs,
           r):
    """Narrow row r's q, k and v (the qkv product, requantized, in `qkv`); keep q and its
    shifts in qn[r], qs[r]; write k and v into sequence b's cache at `pos`."""
    kat = (pos // KEY_BLOCK) * kblock + (pos % KEY_BLOCK) * 2
    vat = (pos // 2) * vrow + pos % 2
    for h in range(heads):
        bh = b * heads + h
        q0, k0, v0 = h * d, c + h * d, 2 * c + h * d
        sq = _row_shift(qkv, q0, q0 + d)
        sk = _row_shift(qkv, k0, k0 + d)
        kb, vb = keys[bh], values[bh]
        for i in range(d):
            qn[r, q0 + i] = min(max(_shift_round_small(qkv[q0 + i], sq, LIM), -ACT_MAX),
                                ACT_MAX)
            kb[kat + (i >> 1) * 32 + (i & 1)] = min(max(
                _shift_round_small(qkv[k0 + i], sk, LIM), -ACT_MAX), ACT_MAX)
            vb[vat + 2 * i] = min(max(_shift_round_small(qkv[v0 + i], v_shift[h * d + i], LIM),
                                      -ACT_MAX), ACT_MAX)
        qs[r, h] = sq
        key_shift[bh, pos] = sk


@njit(inline="always", **_OPTS)
def _query(kb, ks, vb, q, sq, pos, d, qh, ql, scores, wh, wl, mix, out):
    """out[:d] = the attention of query q (d narrowed values, shift sq) over positions 0..pos
    of one sequence's head: keys kb (shifts ks), values vb."""
    n = pos + 1
    d2, dv = qh.shape[0] // 2, mix.shape[0]
    kblock, vrow = d2 * 32, dv * 2
    blocks, pairs = pos // KEY_BLOCK + 1, (n + 1) // 2
    for i in range(d):
        qh[i] = q[i] >> 8
        ql[i] = q[i] & 255
    for t in range(blocks * KEY_BLOCK):  # q . k, exact
        scores[t] = 0
    for j in range(blocks):
        for c0 in range(0, d2, PAIRS_QK):
            _dot_1(kb, j * kblock + c0 * 32, 32, 0, min(PAIRS_QK, d2 - c0), qh, ql, 2 * c0,
                   scores, j * KEY_BLOCK, 8)
    top = -SCORE_LIM
    for t in range(n):  # scores in Q12 log2 units
        s = _shift_round_small(scores[t], 2 * FX - SCORE_FRAC - sq - np.int64(ks[t]),
                               SCORE_LIM)
        scores[t] = s
        top = max(top, s)
    total = np.int64(0)
    for t in range(n):  # softmax weights in Q20
        scores[t] = _exp2_neg(top - scores[t]) >> (EXP_BITS - ATT_BITS)
        total += scores[t]
    for t in range(n):  # split for the sum
        wh[t] = scores[t] >> 10
        wl[t] = scores[t] & 1023
    wh[n] = 0  # the pair partner of an odd last position
    wl[n] = 0
    for i in range(dv):
        mix[i] = 0
    for t0 in range(0, pairs, PAIRS_AV):  # weighted values, exact: 32 channels a sweep
        count = min(PAIRS_AV, pairs - t0)
        for g in range(0, dv - 31, 32):
            _dot_2(vb, t0 * vrow + 2 * g, vrow, 32, count, wh, wl, 2 * t0, mix, g, 10)
        if dv % 32:
            _dot_1(vb, t0 * vrow + 2 * (dv - 16), vrow, 0, count, wh, wl, 2 * t0, mix, dv - 16,
                   10)
    for i in range(d):  # rounded half up
        out[i] = _floor_div(2 * mix[i] + total, 2 * total)


@njit(**_OPTS)
def _attend(acc, p, nf, v_shift, heads, keys, key_shift, values, pos0, per, u, qn, qs, qh, ql,
            scores, wh, wl, mix, xin):
    """Requantize the qkv product, store every row's keys and values, then attend: row r is
    sequence r // per at position pos0 + r % per, and attends over positions 0..its own. All
    of a block's keys are stored before any query reads, so a row sees exactly what it would
    see stepped alone (positions past its own are not read: their weights are 0); the queries
    of one sequence and head run one after another, reading its cache from the core's caches.

    keys: (B*H, blocks * d2 * 32) int16, per block of 16 positions d2 channel pairs of
    [position][2]; values: (B*H, L/2 * dv * 2) int16, per pair of positions dv channels of
    [2 positions]; key_shift: (B*H, L) int8. Scratch: u int64 >= 3C; qn (rows, C) int64 and
    qs (rows, H) int64, the narrowed queries and their shifts; qh, ql (2 d2,) int16 (zero past
    d); scores (blocks * 16,) int64; wh, wl (L + 1,) int16; mix (dv,) int64.
    q . k = 256 (q >> 8) . k + (q & 255) . k and weight x value = 1024 (w >> 10) v +
    (w & 1023) v."""
    c = p.shape[1] // 3
    d = c // heads
    d2, dv = qh.shape[0] // 2, mix.shape[0]
    qkv = u[: 3 * c]
    for r in range(xin.shape[0]):
        _requant(acc[r], p, nf, qkv)
        _store(qkv, c, d, heads, v_shift, r // per, pos0 + r % per, keys, key_shift, values,
               d2 * 32, dv * 2, qn, qs, r)
    for b in range(xin.shape[0] // per):
        for h in range(heads):
            bh = b * heads + h
            for r in range(b * per, (b + 1) * per):
                _query(keys[bh], key_shift[bh], values[bh], qn[r, h * d:], qs[r, h],
                       pos0 + r % per, d, qh, ql, scores, wh, wl, mix, xin[r, h * d:])


@njit(**_OPTS)
def _frequencies(acc, p, nf, u, out):
    """integer.frequencies of the head's product: (B, V) int64, each >= 1, summing to 2**24."""
    v = p.shape[1]
    logits = u[:v]
    for b in range(out.shape[0]):
        _requant(acc[b], p, nf, logits)
        top = logits[0]
        for j in range(1, v):
            top = max(top, logits[j])
        total = np.int64(0)
        for j in range(v):
            logits[j] = _exp2_neg(_shift_round_small(top - logits[j], FX - SCORE_FRAC,
                                                     SCORE_LIM))
            total += logits[j]
        arg = 0  # the first largest, as argmax
        for j in range(1, v):
            if logits[j] > logits[arg]:
                arg = j
        spare = (1 << TOTAL_BITS) - v
        s = np.int64(0)
        for j in range(v):
            f = 1 + _floor_div(logits[j] * spare, total)  # quotient < 2**24
            out[b, j] = f
            s += f
        out[b, arg] += (1 << TOTAL_BITS) - s


@njit(**_OPTS)
def _logits(acc, p, nf, out):
    """integer.linear's requantization of the head's product: (B, V) Q16 logits."""
    for b in range(out.shape[0]):
        _requant(acc[b], p, nf, out[b])


@njit(**_OPTS)
def _step(ids, pos0, wte, wpe, eps, nf, heads, v_shift, w_qkv, p_qkv, w_proj, p_proj, w_fc,
          p_fc, w_mlp, p_mlp, w_head, p_head, keys, key_shift, values, x, xin, acc, u, frac,
          zeros, qn, qs, qh, ql, scores, wh, wl, mix, out, logits, amx_on, wa, tiles, embedded):
    """`per` steps of every sequence at once (see CpuEngine.block): ids (B, per), row r of the
    buffers is sequence r // per at position pos0 + r % per; per-layer arrays are stacked on
    axis 0. `logits` False: `out` gets the frequencies; True: the Q16 logits (and xin[:, :C]
    holds the head's input). amx_on: the weight products run on the AMX units, with the
    weights `wa` (qkv, proj, fc, mlp, head) packed by amx.pack_weights and the scratch
    `tiles` (CpuState.tiles). `embedded`: x already holds the embedded input (a pixel model's
    sum of three, igc.engines.pixel_cpu); ids then only give the shape. x ends as the final
    residual stream."""
    wa_qkv, wa_proj, wa_fc, wa_mlp, wa_head = wa
    c, per = x.shape[1], ids.shape[1]
    for r in range(x.shape[0]):
        t = r % per
        if not embedded:
            for i in range(c):
                x[r, i] = min(max(wte[ids[r // per, t], i] + wpe[pos0 + t, i], -LIM), LIM)
        _norm_row(x[r], eps, nf, u[:c], xin[r])
    for i in range(w_qkv.shape[0]):
        _product(xin, w_qkv[i], wa_qkv[i], amx_on, acc, tiles)
        _attend(acc, p_qkv[i], nf, v_shift[i], heads, keys[i], key_shift[i], values[i], pos0,
                per, u, qn, qs, qh, ql, scores, wh, wl, mix, xin)
        _product(xin, w_proj[i], wa_proj[i], amx_on, acc, tiles)
        _residual_norm(acc, p_proj[i], zeros, x, eps, nf, u, xin)
        _product(xin, w_fc[i], wa_fc[i], amx_on, acc, tiles)
        _gelu_narrow(acc, p_fc[i], nf, u, frac, xin)
        _product(xin, w_mlp[i], wa_mlp[i], amx_on, acc, tiles)
        _residual_norm(acc, p_mlp[i], frac, x, eps, nf, u, xin)
    _product(xin, w_head, wa_head, amx_on, acc, tiles)
    if logits:
        _logits(acc, p_head, nf, out)
    else:
        _frequencies(acc, p_head, nf, u, out)


# -- a pixel model's heads (igc.engines.pixel_cpu) ---------------------------------------
@njit(**_OPTS)
def pixel_head(stream, known, embs, eps, nf, w_fc, p_fc, w_proj, p_proj, w_out, p_out, u,
               xin, acc, frac, h, out, logits, amx_on, wa, tiles):
    """A pixel model's G or B head (igc.engines.pixel_cpu), from the kernels of the body's MLP
    and head: h = stream plus the known channels' embeddings (saturated), h += mlp(norm(h)),
    out = frequencies(norm(h) @ w_out) (`logits`: the Q16 logits instead, and xin[:, :C] holds
    norm(h), the output product's input). `known` (B, k) the channel values, `embs`
    (k, 256, C) their Q16 tables; u, xin, acc, frac: the body's scratch. amx_on: the products
    on the AMX units, with the weights `wa` (fc, proj, out) packed by amx.pack_weights and
    the body's `tiles` scratch (the same integers)."""
    wa_fc, wa_proj, wa_out = wa
    c = stream.shape[1]
    for b in range(stream.shape[0]):
        for i in range(c):
            v = stream[b, i]
            for k in range(known.shape[1]):
                v += embs[k, known[b, k], i]
            h[b, i] = min(max(v, -LIM), LIM)
        _norm_row(h[b], eps, nf, u[:c], xin[b])
    _product(xin, w_fc, wa_fc, amx_on, acc, tiles)
    _gelu_narrow(acc, p_fc, nf, u, frac, xin)
    _product(xin, w_proj, wa_proj, amx_on, acc, tiles)
    _residual_norm(acc, p_proj, frac, h, eps, nf, u, xin)
    _product(xin, w_out, wa_out, amx_on, acc, tiles)
    if logits:
        _logits(acc, p_out, nf, out)
    else:
        _frequencies(acc, p_out, nf, u, out)


# -- the engine -----------------------------------------------------------------------------
def instruction_set(amx_on: bool | None = None) -> str:
    """What a cpu engine multiplies with: "amx-int8 + avx512", "avx512", "avx2" or "generic"
    (the weight products on AMX where `amx_on`, by default where usable; the attention on
    pmaddwd always)."""
    from numba.core.registry import cpu_target

    from igc.engines.simd import target_isa

    isa = target_isa(cpu_target.target_context)
    return f"amx-int8 + {isa}" if (amx.usable() if amx_on is None else amx_on) else isa


# What this process's cpu engines have multiplied with (environment records report it).
KERNELS_USED: set[str] = set()


def cache_layout(length: int, d: int) -> tuple[int, int, int]:
    """(channel pairs of a key, channels of a value padded to 16, blocks of KEY_BLOCK)."""
    return (d + 1) // 2, -(-d // 16) * 16, -(-length // KEY_BLOCK)


@dataclass
class CpuState:
    """One lane's cache and buffers (preallocated: a step allocates only its result; a block of
    several steps grows the row buffers once). Per-layer arrays are stacked on axis 0."""

    keys: np.ndarray  # (layers, B*H, blocks * d2 * 32) int16: see `_attend`
    key_shift: np.ndarray  # (layers, B*H, L) int8 (shifts lie in [-14, 26])
    values: np.ndarray  # (layers, B*H, L/2 * dv * 2) int16
    position: int
    batch: int
    length: int
    u: np.ndarray  # int64 scratch row
    qh: np.ndarray  # (2 d2,) int16
    ql: np.ndarray  # (2 d2,) int16
    scores: np.ndarray  # (blocks * 16,) int64
    wh: np.ndarray  # (L + 1,) int16
    wl: np.ndarray  # (L + 1,) int16
    mix: np.ndarray  # (dv,) int64
    tiles: tuple  # the AMX products' scratch (CpuEngine._tiles)
    rows: dict = field(default_factory=dict)  # the row buffers, by name (CpuEngine._rows)
    views: tuple = ()  # (rows, the buffers' views of that many rows): a decoder's every step


class CpuEngine:
    """The reference's frequencies, bit for bit, at CPU speed (see the module docstring)."""

    name = "cpu"

    def __init__(self, model: IntModel, use_amx: bool | None = None) -> None:
        """use_amx: the weight products on the AMX units (None: where `amx.usable()`)."""
        lins = [model.head, *(getattr(lay, k) for lay in model.layers
                              for k in ("qkv", "proj", "fc", "mlp_proj"))]
        if any(np.abs(lin.w).max(initial=0) > W_MAX for lin in lins):
            raise ModelError(f"integer weights beyond +-{W_MAX}: not a numerics 2 model")
        self.m = model
        c, nl = model.n_embd, len(model.layers)
        inner = model.layers[0].fc.w.shape[1] if model.layers else 4 * c

        def params(lin: Linear) -> np.ndarray:
            return np.stack([lin.m, lin.e, lin.b]).astype(np.int64)

        def stack(name: str, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
            w = np.zeros((nl, (k + 1) // 2, 2 * (-(-n // 16) * 16)), np.int8)
            p = np.zeros((nl, 3, n), np.int64)
            for i, lay in enumerate(model.layers):
                w[i], p[i] = pack_weights(getattr(lay, name).w), params(getattr(lay, name))
            return w, p

        self.w_qkv, self.p_qkv = stack("qkv", c, 3 * c)
        self.w_proj, self.p_proj = stack("proj", c, c)
        self.w_fc, self.p_fc = stack("fc", c, inner)
        self.w_mlp, self.p_mlp = stack("mlp_proj", inner, c)
        self.w_head, self.p_head = pack_weights(model.head.w), params(model.head)
        self.v_shift = np.array([lay.v_shift for lay in model.layers], np.int64).reshape(nl, c)
        self.inner = inner
        self.width_in = 2 * ((max(c, inner) + 1) // 2)
        self.width_out = -(-max(3 * c, inner, model.vocab) // 16) * 16
        available = amx.usable()
        if use_amx and not available:
            raise ModelError("AMX weight products asked for, but this CPU, its numba build or "
                             "IGC_AMX=0 rules them out")
        self.amx = available if use_amx is None else use_amx
        KERNELS_USED.add(instruction_set(self.amx))
        self.wa = self._amx_weights(model) if self.amx else (
            *(np.zeros((nl, 1, 4), np.int8) for _ in range(4)), np.zeros((1, 4), np.int8))

    @staticmethod
    def _amx_weights(model: IntModel) -> tuple[np.ndarray, ...]:
        """The weights again in the AMX tiles' layout: (qkv, proj, fc, mlp) stacked by layer,
        and the head."""
        def stacked(name: str) -> np.ndarray:
            return np.stack([amx.pack_weights(getattr(lay, name).w) for lay in model.layers])

        layers = tuple(stacked(k) for k in ("qkv", "proj", "fc", "mlp_proj")) \
            if model.layers else tuple(np.zeros((0, 1, 4), np.int8) for _ in range(4))
        return (*layers, amx.pack_weights(model.head.w))

    def _tiles(self) -> tuple[np.ndarray, ...]:
        """A lane's scratch for the AMX products: high and low bytes of 16 activation rows,
        four int32 output tiles, the tile configuration."""
        kp = -(-self.width_in // amx.TILE_K) * amx.TILE_K if self.amx else amx.TILE_K
        return (np.zeros((amx.TILE_ROWS, kp), np.int8), np.zeros((amx.TILE_ROWS, kp), np.uint8),
                np.zeros(4 * amx.TILE_ROWS * amx.TILE_N, np.int32), amx.tile_config())

    def start(self, batch: int, length: int | None = None) -> CpuState:
        m = self.m
        length = length or m.n_positions
        bh, d, c, nl = batch * m.n_head, m.head_dim, m.n_embd, len(m.layers)
        d2, dv, blocks = cache_layout(length, d)
        z = np.zeros
        state = CpuState(
            keys=z((nl, bh, blocks * d2 * 32), np.int16),
            key_shift=z((nl, bh, length), np.int8),
            values=z((nl, bh, (length + 1) // 2 * dv * 2), np.int16),
            position=0, batch=batch, length=length,
            u=z(max(3 * c, self.inner, m.vocab), np.int64), qh=z(2 * d2, np.int16),
            ql=z(2 * d2, np.int16), scores=z(blocks * KEY_BLOCK, np.int64),
            wh=z(length + 1, np.int16), wl=z(length + 1, np.int16), mix=z(dv, np.int64),
            tiles=self._tiles(),
        )
        self._rows(state, batch)
        return state

    def _rows(self, state: CpuState, rows: int) -> dict:
        """The row buffers of `rows` rows (views of buffers grown to the largest block yet):
        x (rows, C) int64 residual stream, Q16; xin (rows, widest input, even) int16, the next
        product's input; acc (rows, widest output, padded to 16) int64, a product's exact
        sums; frac (rows,) int64, fraction bits of the MLP's second input; zeros (rows,) int64,
        the attention output's; qn (rows, C) int64 and qs (rows, H) int64, the queries."""
        m, have = self.m, state.rows
        if state.views and state.views[0] == rows:
            return state.views[1]
        if not have or len(have["x"]) < rows:
            z, c = np.zeros, m.n_embd
            have.update(x=z((rows, c), np.int64), xin=z((rows, self.width_in), np.int16),
                        acc=z((rows, self.width_out), np.int64), frac=z(rows, np.int64),
                        zeros=z(rows, np.int64), qn=z((rows, c), np.int64),
                        qs=z((rows, m.n_head), np.int64))
        state.views = (rows, {k: v[:rows] for k, v in have.items()})
        return state.views[1]

    def step(self, state: CpuState, ids: np.ndarray) -> np.ndarray:
        """One token per sequence -> (B, V) int64 frequencies of the next token."""
        return self._block(state, np.asarray(ids)[:, None], False)[:, 0]

    def step_logits(self, state: CpuState, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As `ReferenceEngine.step_logits`: the head's input and its Q16 logits."""
        ids = np.asarray(ids)
        logits = self._block(state, ids.reshape(len(ids), 1), True)
        return state.rows["xin"][: len(ids), : self.m.n_embd].astype(np.int64), logits[:, 0]

    def block(self, state: CpuState, ids: np.ndarray) -> np.ndarray:
        """`ids` (B, P): P steps of every sequence in one call, where all P tokens are known
        beforehand (an encoder's): (B, P, V) frequencies, exactly those of P calls of `step`.
        Faster, because each weight is read once for B*P rows and each sequence's cache once
        for its P queries."""
        return self._block(state, ids, False)

    def block_logits(self, state: CpuState, ids: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """As `block`, for `step_logits`: the head's inputs (B, P, C) and logits (B, P, V)."""
        logits = self._block(state, ids, True)
        c, (b, p) = self.m.n_embd, np.shape(ids)
        hidden = state.rows["xin"][: b * p, :c].astype(np.int64).reshape(b, p, c)
        return hidden, logits

    def _block(self, state: CpuState, ids: np.ndarray, logits: bool,
               embedded: np.ndarray | None = None) -> np.ndarray:
        """`embedded` (B*P, C) Q16: the input already embedded (ids then give only the
        shape); the row buffer x ends as the final residual stream either way."""
        m, st, pos = self.m, state, state.position
        ids = np.ascontiguousarray(ids, np.int64)
        if ids.ndim != 2 or len(ids) != st.batch:
            raise ModelError(f"step got {len(ids)} tokens for a cache of batch {st.batch}")
        per = ids.shape[1]
        if pos + per > min(st.length, m.n_positions):
            raise ModelError(f"sequence longer than the model's context of {m.n_positions}")
        if ids.size and ids.view(np.uint64).max() >= len(m.wte):  # negatives wrap: one pass
            raise ModelError(f"token ids must lie in [0, {len(m.wte)})")
        r = self._rows(st, st.batch * per)
        if embedded is not None:
            r["x"][:] = embedded
        out = np.empty((st.batch * per, m.vocab), np.int64)
        _step(ids, pos, m.wte, m.wpe, m.eps, np.int64(m.norm_frac), m.n_head, self.v_shift,
              self.w_qkv, self.p_qkv, self.w_proj, self.p_proj, self.w_fc, self.p_fc,
              self.w_mlp, self.p_mlp, self.w_head, self.p_head, st.keys, st.key_shift,
              st.values, r["x"], r["xin"], r["acc"], st.u, r["frac"], r["zeros"], r["qn"],
              r["qs"], st.qh, st.ql, st.scores, st.wh, st.wl, st.mix, out, logits, self.amx,
              self.wa, st.tiles, embedded is not None)
        state.position = pos + per
        return out.reshape(st.batch, per, m.vocab)
