"""Numerics 2 on the CPU, fast: the reference's integers (igc/models/integer.py), bit for bit.

Weight products. Activations are int16-range integers, weights int8. Where torch's int8 product
runs on oneDNN with AVX-512 VNNI (`torch._int_mm`: int8 x int8 -> int32, exact), each row x is
split into two int8 rows, x = 256 * (x >> 8) + ((x & 255) - 128) + 128, so that
x @ W = 256 * (hi @ W) + (lo @ W) + 128 * colsum(W): one int8 product of 2B rows, every partial
sum below 2**31. A self-test on worst-case operands, per shape, confirms the product is exact
before it is used (an int8 kernel that saturates 16-bit pair sums, as pre-VNNI ones can, fails
it). Elsewhere the product runs as float64 BLAS: K <= 4096 keeps every partial sum below 2**53,
so it is the exact integer in any summation order, with or without FMA. Both give the same
integers, and torch runs them on the calling thread only.

Everything else is numba on int64, one rule of the reference per helper, with the reference's
NumPy semantics reproduced where they matter (shifts by 64 or more, floor division). Attention
reads an int16 cache, keys as (position, channel) rows and values as (channel, position) rows,
so that both sums are integer reductions over contiguous memory, which LLVM vectorises (integer
addition is associative, so no fast-math is needed for that). Key shifts are int8 (they lie in
[-14, 26]).

Lanes call `step` from worker threads: the numba kernels release the GIL.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from igc.errors import ModelError
from igc.models.integer import (
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
    IntModel,
    Linear,
    exp_table,
    sigmoid_table,
)
from igc.models.runtime import one_thread

_OPTS = {"nogil": True, "cache": True, "boundscheck": False, "error_model": "numpy"}
_EPS0 = -NORM_EPS_SHIFTS.start  # eps[k + _EPS0] is the eps of row shift k
_FRAC_MASK = (1 << SCORE_FRAC) - 1
EXP = exp_table()
SIG = sigmoid_table()


# -- the reference's rules on scalars -------------------------------------------------------
@njit(inline="always", **_OPTS)
def _shift_round(v: np.int64, s: np.int64, lim: np.int64) -> np.int64:
    """integer.shift_round on one value, NumPy's shifts included: `1 << 63` wraps to -2**63,
    `1 << n` is 0 and `v >> n` is v's sign (0 or -1) for n >= 64."""
    if s > 0:
        half = np.int64(1) << (s - 1) if s <= 64 else np.int64(0)
        t = v + half  # wraps as NumPy's int64 does
        r = t >> s if s < 64 else (np.int64(-1) if t < 0 else np.int64(0))
    else:
        left = min(-s, 62)
        bound = lim >> left
        r = min(max(v, -bound), bound) << left
    return min(max(r, -lim), lim)


@njit(inline="always", **_OPTS)
def _shift_round_small(v: np.int64, s: np.int64, lim: np.int64) -> np.int64:
    """_shift_round for -62 <= s <= 63 (no special cases), branch-free so loops vectorise."""
    right = max(s, 1)
    down = (v + (np.int64(1) << (right - 1))) >> right
    left = min(max(-s, 0), 62)
    bound = lim >> left
    up = min(max(v, -bound), bound) << left
    r = down if s > 0 else up
    return min(max(r, -lim), lim)


@njit(inline="always", **_OPTS)
def _bit_length(v: np.int64) -> np.int64:
    v = abs(v)
    n = np.int64(0)
    for b in (32, 16, 8, 4, 2, 1):
        if v >= np.int64(1) << b:
            n += b
            v >>= b
    return n + (1 if v > 0 else 0)


@njit(inline="always", **_OPTS)
def _isqrt(n: np.int64) -> np.int64:
    """floor(sqrt(n)) for 0 <= n < 2**62: the float root, corrected to the exact one."""
    r = np.int64(np.sqrt(np.float64(n)))
    while r * r > n:
        r -= 1
    while (r + 1) * (r + 1) <= n:
        r += 1
    return r


@njit(inline="always", **_OPTS)
def _floor_div(num: np.int64, den: np.int64) -> np.int64:
    """floor(num / den) for den > 0, |num| < 2**62 and a quotient below 2**40: the float
    quotient is then within 2**-11 of the exact one, so one step each way corrects its floor.
    (A division instruction per element costs several times more, and does not vectorise.)"""
    q = np.int64(np.floor(np.float64(num) / np.float64(den)))
    q -= np.int64(1) if q * den > num else np.int64(0)
    q += np.int64(1) if (q + 1) * den <= num else np.int64(0)
    return q


@njit(inline="always", **_OPTS)
def _exp2_neg(z: np.int64) -> np.int64:
    """integer.exp2_neg for 0 <= z: the table's entries are below 2**31, so shifting by
    min(k, 62) already gives the reference's 0 for k >= 63; no branch, so loops vectorise."""
    return EXP[z & _FRAC_MASK] >> min(z >> SCORE_FRAC, 62)


@njit(inline="always", **_OPTS)
def _row_shift(v: np.ndarray, lo: int, hi: int) -> np.int64:
    """narrow's shift of v[lo:hi]: the largest magnitude gets 15 bits (0 for a row of zeros)."""
    top = np.int64(0)
    for i in range(lo, hi):
        top = max(top, abs(v[i]))
    return _bit_length(top) - 15 if top > 0 else np.int64(0)



# -- SIMD: pairwise int16 multiply-add --------------------------------------------------------
# Attention's two sums run on pmaddwd (x86: int16 pairs multiplied and added into int32 lanes,
# exact), emitted as the AVX-512 or AVX2 intrinsic where numba compiles for such a CPU and as
# plain vector IR elsewhere. Operands are split so that no int32 lane can overflow; the lanes
# are widened to int64 before they are combined.
_I16, _I32, _I64 = ir.IntType(16), ir.IntType(32), ir.IntType(64)


def _vec(t: ir.Type, n: int) -> ir.VectorType:
    return ir.VectorType(t, n)


def _isa(context) -> str:
    """The instruction set numba compiles for (its cache keys on the same CPU features)."""
    try:
        features = context.codegen()._tm_features.split(",")
    except Exception:  # an unknown codegen: plain vector IR is always correct
        return "generic"
    return "avx512" if "+avx512bw" in features else "avx2" if "+avx2" in features else "generic"


def _shuffle(builder, v, idx):
    return builder.shuffle_vector(v, v, ir.Constant(_vec(_I32, len(idx)), list(idx)))


def _pmadd(builder, isa: str, a, b):
    """<32 x i16> a, b -> <16 x i32> a[2j] * b[2j] + a[2j + 1] * b[2j + 1] (exact for
    operands within +-32767)."""
    if isa == "avx512":
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_vec(_I32, 16), [_vec(_I16, 32)] * 2),
            "llvm.x86.avx512.pmaddw.d.512")
        return builder.call(fn, [a, b])
    if isa == "avx2":
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_vec(_I32, 8), [_vec(_I16, 16)] * 2),
            "llvm.x86.avx2.pmadd.wd")
        lo = builder.call(fn, [_shuffle(builder, a, range(16)), _shuffle(builder, b, range(16))])
        hi = builder.call(fn, [_shuffle(builder, a, range(16, 32)),
                               _shuffle(builder, b, range(16, 32))])
        return builder.shuffle_vector(lo, hi, ir.Constant(_vec(_I32, 16), list(range(16))))
    even, odd = range(0, 32, 2), range(1, 32, 2)
    v32 = _vec(_I32, 16)
    prod = [builder.mul(builder.sext(_shuffle(builder, a, ix), v32),
                        builder.sext(_shuffle(builder, b, ix), v32)) for ix in (even, odd)]
    return builder.add(*prod)


def _at(context, builder, aryty, ary, index):
    return builder.gep(context.make_array(aryty)(context, builder, ary).data, [index])


def _load(builder, ptr, ty):
    return builder.load(builder.bitcast(ptr, ty.as_pointer()), align=2)


def _pair32(context, builder, aryty, ary, index):
    """The int16 pair ary[index], ary[index + 1], repeated 16 times: <32 x i16>."""
    return _shuffle(builder, _load(builder, _at(context, builder, aryty, ary, index),
                                   _vec(_I16, 2)), [0, 1] * 16)


@intrinsic
def _dot_pairs(typingctx, src, base, stride, count, hi, lo, c0, out, off, shift):
    """For 16 lanes j: out[off + j] += sum over p < count of (H_p << shift) + L_p, where H_p =
    src[s + 2j] * hi[c0 + 2p] + src[s + 2j + 1] * hi[c0 + 2p + 1] with s = base + p * stride,
    L_p likewise with lo. int32 lanes: the caller bounds count so that they cannot overflow."""
    sig = types.void(src, base, stride, count, hi, lo, c0, out, off, shift)

    def codegen(context, builder, signature, args):
        srct, _, _, _, hit, lot, _, outt, _, _ = signature.args
        src_, base_, stride_, count_, hi_, lo_, c0_, out_, off_, shift_ = args
        isa = _isa(context)
        zero = ir.Constant(_vec(_I32, 16), None)
        acc_hi = cgutils.alloca_once_value(builder, zero)
        acc_lo = cgutils.alloca_once_value(builder, zero)
        with cgutils.for_range(builder, count_) as loop:
            p = loop.index
            at = builder.add(base_, builder.mul(p, stride_))
            v = _load(builder, _at(context, builder, srct, src_, at), _vec(_I16, 32))
            c = builder.add(c0_, builder.mul(p, ir.Constant(_I64, 2)))
            for acc, ary, aryt in ((acc_hi, hi_, hit), (acc_lo, lo_, lot)):
                w = _pair32(context, builder, aryt, ary, c)
                builder.store(builder.add(builder.load(acc), _pmadd(builder, isa, v, w)), acc)
        # shift: a compile-time constant in practice; a vector shift by a splat of it
        v64 = _vec(_I64, 16)
        hi64 = builder.sext(builder.load(acc_hi), v64)
        sh = builder.insert_element(ir.Constant(v64, None), shift_, ir.Constant(_I32, 0))
        sh = builder.shuffle_vector(sh, sh, ir.Constant(_vec(_I32, 16), [0] * 16))
        ptr = builder.bitcast(_at(context, builder, outt, out_, off_), v64.as_pointer())
        add = builder.add(builder.shl(hi64, sh), builder.sext(builder.load(acc_lo), v64))
        builder.store(builder.add(builder.load(ptr, align=8), add), ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen

# -- products in and out ---------------------------------------------------------------------
@njit(inline="always", **_OPTS)
def _store(int8: bool, v: np.ndarray, b: int, a8: np.ndarray, af: np.ndarray) -> None:
    """Row b of a product's input: v (int16-range int64) as the int8 pair (hi into row b, lo
    into row B + b of a8) or as float64 into af."""
    n = v.shape[0]
    if int8:
        lo = a8.shape[0] // 2 + b
        for i in range(n):
            a8[b, i] = v[i] >> 8
            a8[lo, i] = (v[i] & 255) - 128
    else:
        for i in range(n):
            af[b, i] = v[i]


@njit(inline="always", **_OPTS)
def _requant(int8: bool, r: np.ndarray, f: np.ndarray, b: int, p: np.ndarray, frac: np.int64,
             out: np.ndarray) -> None:
    """integer.linear after the product, row b: the exact sums (from the int8 pair rows of r,
    or from f) -> Q16 int64 in out. p: the layer's (m, e, b, 128 * colsum) rows."""
    n = p.shape[1]
    if int8:
        lo = r.shape[0] // 2 + b
        for j in range(n):
            out[j] = (np.int64(r[b, j]) << 8) + np.int64(r[lo, j]) + p[3, j]
    else:
        for j in range(n):
            out[j] = np.int64(f[b, j])
    lo_e, hi_e = p[1, 0], p[1, 0]
    for j in range(n):
        lo_e, hi_e = min(lo_e, p[1, j]), max(hi_e, p[1, j])
    if lo_e + frac - FX >= -62 and hi_e + frac - FX <= 63:  # always, for trained weights
        for j in range(n):
            t = _shift_round_small(out[j] * p[0, j], p[1, j] + frac - FX, LIM) + p[2, j]
            out[j] = min(max(t, -LIM), LIM)
    else:
        for j in range(n):
            t = _shift_round(out[j] * p[0, j], p[1, j] + frac - FX, LIM) + p[2, j]
            out[j] = min(max(t, -LIM), LIM)


@njit(inline="always", **_OPTS)
def _norm_row(x: np.ndarray, eps: np.ndarray, nf: np.int64, u: np.ndarray) -> None:
    """integer.rms_norm of one Q16 row, into u (int16-range values, `nf` fraction bits)."""
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
        y = _floor_div(2 * (u[i] << (nf + 10)) + r, 2 * r)
        u[i] = min(max(y, -ACT_MAX), ACT_MAX)


@njit(inline="always", **_OPTS)
def _rows(int8: bool, r: np.ndarray, f: np.ndarray) -> int:
    return r.shape[0] // 2 if int8 else f.shape[0]


# -- kernels, one per stretch between weight products --------------------------------------
@njit(**_OPTS)
def embed_norm(wte, wpe, ids, pos, eps, nf, x, u, int8, a8, af):
    """x = wte[ids] + wpe[pos] (saturated); the next product's input is rms_norm(x)."""
    c = x.shape[1]
    for b in range(x.shape[0]):
        for i in range(c):
            x[b, i] = min(max(wte[ids[b], i] + wpe[pos, i], -LIM), LIM)
        _norm_row(x[b], eps, nf, u[:c])
        _store(int8, u[:c], b, a8, af)


@njit(**_OPTS)
def residual_norm(int8, r, f, p, frac, x, eps, nf, u, a8, af):
    """x += linear's output (row b's input had frac[b] fraction bits), saturated; the next
    product's input is rms_norm(x)."""
    c = x.shape[1]
    for b in range(x.shape[0]):
        _requant(int8, r, f, b, p, frac[b], u[:c])
        for i in range(c):
            x[b, i] = min(max(x[b, i] + u[i], -LIM), LIM)
        _norm_row(x[b], eps, nf, u[:c])
        _store(int8, u[:c], b, a8, af)


@njit(**_OPTS)
def gelu_narrow(int8, r, f, p, nf, sig, u, frac, a8, af):
    """quick_gelu(linear(h)), narrowed: the next product's input, and frac[b] = FX - shift
    (its fraction bits)."""
    n = p.shape[1]
    row = u[:n]
    for b in range(frac.shape[0]):
        _requant(int8, r, f, b, p, nf, row)
        for j in range(n):
            v = row[j]
            i = _shift_round_small(v, FX - GELU_FRAC, LIM)
            if i >= GELU_HALF:
                row[j] = v
            elif i >= -GELU_HALF:
                row[j] = _shift_round_small(v * sig[i + GELU_HALF], SIG_BITS, LIM)
            else:
                row[j] = 0
        sg = _row_shift(row, 0, n)
        for j in range(n):
            row[j] = min(max(_shift_round_small(row[j], sg, LIM), -ACT_MAX), ACT_MAX)
        frac[b] = FX - sg
        _store(int8, row, b, a8, af)


KEY_BLOCK = 16  # positions per block of the key cache: one SIMD group of int32 lanes
PAIRS_QK = 64  # channel pairs per int32 sum of q . k: 64 * 2 * 255 * 32767 < 2**31
PAIRS_AV = 32  # position pairs per int32 sum of weights x values: 32 * 2 * 1024 * 32767 < 2**31


def cache_layout(length: int, d: int) -> tuple[int, int, int]:
    """(channel pairs of a key, channels of a value padded to 16, blocks of KEY_BLOCK)."""
    return (d + 1) // 2, -(-d // 16) * 16, -(-length // KEY_BLOCK)


@njit(**_OPTS)
def attend(int8, r, f, p, nf, v_shift, heads, keys, key_shift, values, pos, u, qh, ql, scores,
           wh, wl, mix, a8, af):
    """Requantize the qkv product, store this step's keys and values at `pos`, attend over
    positions 0..pos; the next product's input is the attention output.

    keys: (B*H, blocks * d2 * 32) int16, per block of 16 positions d2 channel pairs of
    [position][2]; values: (B*H, L/2 * dv * 2) int16, per pair of positions dv channels of
    [2 positions]; key_shift: (B*H, L) int8. Scratch: u int64 >= 4C; qh, ql (2 d2,) int16
    (zero past d); scores (blocks * 16,) int64; wh, wl (L + 1,) int16; mix (dv,) int64.
    q . k = 256 (q >> 8) . k + (q & 255) . k and weight x value = 1024 (w >> 10) v +
    (w & 1023) v, each side's int32 lanes bounded by PAIRS_QK and PAIRS_AV."""
    c = p.shape[1] // 3
    d = c // heads
    n = pos + 1
    d2, dv = qh.shape[0] // 2, mix.shape[0]
    kblock, vrow = d2 * 32, dv * 2
    blocks, pairs = pos // KEY_BLOCK + 1, (n + 1) // 2
    kat = (pos // KEY_BLOCK) * kblock + (pos % KEY_BLOCK) * 2
    vat = (pos // 2) * vrow + pos % 2
    qkv, a = u[: 3 * c], u[3 * c : 4 * c]
    for b in range(_rows(int8, r, f)):
        _requant(int8, r, f, b, p, nf, qkv)
        for h in range(heads):
            bh = b * heads + h
            q0, k0, v0 = h * d, c + h * d, 2 * c + h * d
            sq = _row_shift(qkv, q0, q0 + d)
            sk = _row_shift(qkv, k0, k0 + d)
            kb, vb = keys[bh], values[bh]
            for i in range(d):  # narrowed q and k, shifted v, in place
                qkv[q0 + i] = min(max(_shift_round_small(qkv[q0 + i], sq, LIM), -ACT_MAX),
                                  ACT_MAX)
                qkv[k0 + i] = min(max(_shift_round_small(qkv[k0 + i], sk, LIM), -ACT_MAX),
                                  ACT_MAX)
                qkv[v0 + i] = min(max(_shift_round_small(qkv[v0 + i], v_shift[h * d + i], LIM),
                                      -ACT_MAX), ACT_MAX)
            for i in range(d):
                qh[i] = qkv[q0 + i] >> 8
                ql[i] = qkv[q0 + i] & 255
            for i in range(d):
                kb[kat + (i >> 1) * 32 + (i & 1)] = qkv[k0 + i]
                vb[vat + 2 * i] = qkv[v0 + i]
            key_shift[bh, pos] = sk
            for t in range(blocks * KEY_BLOCK):  # q . k, exact
                scores[t] = 0
            for j in range(blocks):
                for c0 in range(0, d2, PAIRS_QK):
                    _dot_pairs(kb, j * kblock + c0 * 32, 32, min(PAIRS_QK, d2 - c0), qh, ql,
                               2 * c0, scores, j * KEY_BLOCK, 8)
            ks = key_shift[bh]
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
            for g in range(0, dv, 16):  # weighted values, exact
                for t0 in range(0, pairs, PAIRS_AV):
                    _dot_pairs(vb, t0 * vrow + 2 * g, vrow, min(PAIRS_AV, pairs - t0), wh, wl,
                               2 * t0, mix, g, 10)
            for i in range(d):  # rounded half up
                a[h * d + i] = _floor_div(2 * mix[i] + total, 2 * total)
        _store(int8, a, b, a8, af)


@njit(**_OPTS)
def head_frequencies(int8, r, f, p, nf, u, out):
    """integer.frequencies of the head's product: (B, V) int64, each >= 1, summing to 2**24."""
    v = p.shape[1]
    logits = u[:v]
    for b in range(out.shape[0]):
        _requant(int8, r, f, b, p, nf, logits)
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
            fr = 1 + _floor_div(logits[j] * spare, total)  # quotient < 2**24
            out[b, j] = fr
            s += fr
        out[b, arg] += (1 << TOTAL_BITS) - s


# -- the int8 product and its self-test -----------------------------------------------------
_checked: dict[tuple[int, int, int], bool] = {}
_checked_lock = threading.Lock()


def int8_product_ok(m: int, k: int, n: int) -> bool:
    """Whether torch._int_mm computes (m, k) @ (k, n) int8 products exactly here, fast (oneDNN
    with AVX-512 VNNI; its fallback loop is exact but slow). Tested once per shape on operands
    that make a saturating kernel fail."""
    key = (m, k, n)
    with _checked_lock:
        if key not in _checked:
            _checked[key] = _int8_check(m, k, n)
        return _checked[key]


def _vnni() -> bool:
    for name in ("_is_avx512_vnni_supported", "_is_vnni_supported"):
        probe = getattr(torch.cpu, name, None)
        if probe is not None:
            try:
                return bool(probe())
            except Exception:
                return False
    return False


def _int8_check(m: int, k: int, n: int) -> bool:
    if not (hasattr(torch, "_int_mm") and torch.backends.mkldnn.is_available() and _vnni()):
        return False
    rng = np.random.default_rng(k * 7919 + n)
    alt = np.where(np.arange(k) % 2, 127, -128)
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)  # rows: 127s, -128s, alternating
    a[0::3], a[1::3], a[2::3] = 127, -128, alt
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)  # columns likewise, and random
    w[:, 0::4], w[:, 1::4], w[:, 2::4] = 127, -128, -alt[:, None] - 1
    want = a.astype(np.int64) @ w.astype(np.int64)
    try:
        with one_thread():
            got = torch._int_mm(torch.from_numpy(a), torch.from_numpy(w)).numpy()
    except Exception:
        return False
    return bool(np.array_equal(got.astype(np.int64), want))


# -- the engine -----------------------------------------------------------------------------
@dataclass
class CpuState:
    """One lane's cache and buffers (preallocated: a step allocates only its result)."""

    keys: list[np.ndarray]  # per layer (B*H, blocks * d2 * 32) int16: see `attend`
    key_shift: list[np.ndarray]  # per layer (B*H, L) int8
    values: list[np.ndarray]  # per layer (B*H, L/2 * dv * 2) int16
    position: int
    batch: int
    int8: bool  # products as torch._int_mm of int8 pairs, else float64
    x: np.ndarray  # (B, C) int64 residual stream, Q16
    frac: np.ndarray  # (B,) int64 fraction bits of each row of the MLP's second input
    frac_0: np.ndarray  # (B,) zeros: the attention output's fraction bits
    u: np.ndarray  # int64 scratch
    qh: np.ndarray  # (2 d2,) int16
    ql: np.ndarray  # (2 d2,) int16
    scores: np.ndarray  # (blocks * 16,) int64
    wh: np.ndarray  # (L + 1,) int16
    wl: np.ndarray  # (L + 1,) int16
    mix: np.ndarray  # (dv,) int64
    a8: dict  # product inputs by width: (2B, K) int8 (unused (2, 1) when float64)
    af: dict  # product inputs by width: (B, K) float64 (unused (1, 1) when int8)
    r: dict  # product outputs by width: (2B, N) int32
    f: dict  # product outputs by width: (B, N) float64
    t: dict  # torch views of the above, by (name, width)


class CpuEngine:
    """The reference's frequencies, bit for bit, at CPU speed (see the module docstring).

    `int8`: None picks torch's int8 product where it is exact and fast here, False forces
    float64 products (tests compare both)."""

    name = "cpu"

    def __init__(self, model: IntModel, int8: bool | None = None) -> None:
        self.m = model
        self.int8 = int8

        def prep(lin: Linear) -> tuple:
            p = np.stack([lin.m, lin.e, lin.b, 128 * lin.w.sum(axis=0)]).astype(np.int64)
            return (p, torch.from_numpy(np.ascontiguousarray(lin.w, np.int8)),
                    torch.from_numpy(lin.w_f64))

        self.layers = [tuple(prep(lin) for lin in (lay.qkv, lay.proj, lay.fc, lay.mlp_proj))
                       for lay in model.layers]
        self.head = prep(model.head)
        self.widths = {model.n_embd, 3 * model.n_embd, model.vocab,
                       *(lay.fc.w.shape[1] for lay in model.layers)}
        self.shapes = {(lin.w.shape[0], lin.w.shape[1]) for lay in model.layers
                       for lin in (lay.qkv, lay.proj, lay.fc, lay.mlp_proj)}
        self.shapes.add(model.head.w.shape)

    def start(self, batch: int, length: int | None = None) -> CpuState:
        m = self.m
        length = length or m.n_positions
        bh, d, c, n = batch * m.n_head, m.head_dim, m.n_embd, len(m.layers)
        int8 = self.int8
        if int8 is None or int8:
            int8 = all(int8_product_ok(2 * batch, k, w) for k, w in self.shapes)
        z = np.zeros
        widths = sorted(self.widths)
        a8 = {w: z((2 * batch, w) if int8 else (2, 1), np.int8) for w in widths}
        af = {w: z((1, 1) if int8 else (batch, w)) for w in widths}
        r = {w: z((2 * batch, w) if int8 else (2, 1), np.int32) for w in widths}
        f = {w: z((1, 1) if int8 else (batch, w)) for w in widths}
        d2, dv, blocks = cache_layout(length, d)
        st = CpuState(
            keys=[z((bh, blocks * d2 * 32), np.int16) for _ in range(n)],
            key_shift=[z((bh, length), np.int8) for _ in range(n)],
            values=[z((bh, (length + 1) // 2 * dv * 2), np.int16) for _ in range(n)],
            position=0, batch=batch, int8=int8, x=z((batch, c), np.int64),
            frac=z(batch, np.int64), frac_0=z(batch, np.int64),
            u=z(max(4 * c, *widths), np.int64), qh=z(2 * d2, np.int16),
            ql=z(2 * d2, np.int16), scores=z(blocks * KEY_BLOCK, np.int64),
            wh=z(length + 1, np.int16), wl=z(length + 1, np.int16), mix=z(dv, np.int64),
            a8=a8, af=af, r=r, f=f, t={},
        )
        for name in ("a8", "af", "r", "f"):
            for w, arr in getattr(st, name).items():
                st.t[name, w] = torch.from_numpy(arr)
        return st

    def _product(self, st: CpuState, k: int, lin: tuple) -> tuple:
        """The input of width k times a layer's weights: (r, f) holding the exact sums."""
        p, w8, w64 = lin
        nout = p.shape[1]
        if st.int8:
            torch._int_mm(st.t["a8", k], w8, out=st.t["r", nout])
        else:
            torch.mm(st.t["af", k], w64, out=st.t["f", nout])
        return st.r[nout], st.f[nout]

    def step(self, state: CpuState, ids: np.ndarray) -> np.ndarray:
        """One token per sequence -> (B, V) int64 frequencies of the next token."""
        m, st, pos = self.m, state, state.position
        if pos >= (st.key_shift[0].shape[1] if m.layers else m.n_positions):
            raise ModelError(f"sequence longer than the model's context of {m.n_positions}")
        if len(ids) != st.batch:
            raise ModelError(f"step got {len(ids)} tokens for a cache of batch {st.batch}")
        ids = np.ascontiguousarray(ids, np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(m.wte)):
            raise ModelError(f"token ids must lie in [0, {len(m.wte)})")
        c, nf, i8 = m.n_embd, np.int64(m.norm_frac), st.int8
        embed_norm(m.wte, m.wpe, ids, pos, m.eps, nf, st.x, st.u, i8, st.a8[c], st.af[c])
        with one_thread(), torch.inference_mode():
            for i, (lay, (qkv, proj, fc, mlp)) in enumerate(zip(m.layers, self.layers,
                                                                strict=True)):
                r, f = self._product(st, c, qkv)
                attend(i8, r, f, qkv[0], nf, lay.v_shift, m.n_head, st.keys[i],
                       st.key_shift[i], st.values[i], pos, st.u, st.qh, st.ql, st.scores,
                       st.wh, st.wl, st.mix, st.a8[c], st.af[c])
                r, f = self._product(st, c, proj)
                residual_norm(i8, r, f, proj[0], st.frac_0, st.x, m.eps, nf, st.u, st.a8[c],
                              st.af[c])
                r, f = self._product(st, c, fc)
                k = fc[0].shape[1]
                gelu_narrow(i8, r, f, fc[0], nf, SIG, st.u, st.frac, st.a8[k], st.af[k])
                r, f = self._product(st, k, mlp)
                residual_norm(i8, r, f, mlp[0], st.frac, st.x, m.eps, nf, st.u, st.a8[c],
                              st.af[c])
            r, f = self._product(st, c, self.head)
        freqs = np.empty((st.batch, m.vocab), np.int64)
        head_frequencies(i8, r, f, self.head[0], nf, st.u, freqs)
        state.position = pos + 1
        return freqs
