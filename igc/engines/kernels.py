"""Fused CPU kernels for ImageGPT's single-token step (numba).

Why: a decode step of 16 tiles spent half its time in ~300 tiny `bmm` calls over the key/value
cache and a quarter in per-operation overhead (docs/speed.md). These kernels read each tile's
keys and values once per layer, with the softmax fused in, and replace the norm and activation
chains with one loop each.

Why numba rather than BLAS: every loop here is written so that no sum is reassociated. Vectorised
loops run across independent outputs (positions, channels), and each reduction adds its terms
in index order; numba compiles without fast-math, so LLVM neither reorders them nor contracts
a multiply and an add into an FMA. The exponential is our own (range reduction and a fixed
polynomial, basic operations only) rather than libm's, which picks code paths by CPU. So these
kernels give the same floats on any IEEE-754 machine and with any thread count. The matrix
products with the weights stay in torch (one thread), as in the reference step.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from igc.core.numerics import FUSED
from igc.engines.kernel_cache import njit

# Versioned: a file records the numerics that coded it (docs/format.md); changing any
# arithmetic below changes the floats, so it needs a new NUMERICS number, not an edit.
NUMERICS = FUSED.number  # igc.core.numerics: numerics 1

_F = np.float32
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)  # exact in float32, so k * _LN2_HI is exact for |k| < 2**15
_LN2_LO = _F(-2.12194440e-4)
_HALF = _F(0.5)
_ONE = _F(1.0)
_ZERO = _F(0.0)
_LO = _F(-87.0)  # exp(-87) is still a normal float32; below it the result is flushed to 0
_HI = _F(88.0)
# Minimax coefficients for exp(r), |r| <= ln2 / 2 (the classic Cephes expf set).
_P0 = _F(1.9875691500e-4)
_P1 = _F(1.3981999507e-3)
_P2 = _F(8.3334519073e-3)
_P3 = _F(4.1665795894e-2)
_P4 = _F(1.6666665459e-1)
_P5 = _F(5.0000001201e-1)
_QUICK_GELU = _F(1.702)

BLOCK = 64  # positions per block of the key cache

_OPTS = {"nogil": True, "cache": True, "boundscheck": False, "error_model": "numpy"}


@njit(**_OPTS)
def exp_(x: np.ndarray, n: int, shift: np.float32, scale: np.ndarray) -> None:
    """x[:n] = exp(x[:n] - shift) in place (`scale`: scratch of >= n floats). Within 2 ulp
    (tested; 1.3 measured); arguments below -87 give 0, above 88 give exp(88)."""
    bits = scale.view(np.int32)
    for j in range(n):
        a = min(max(x[j] - shift, _LO), _HI)
        k = np.floor(a * _LOG2E + _HALF)
        r = (a - k * _LN2_HI) - k * _LN2_LO
        p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
        x[j] = (p * (r * r) + r) + _ONE
        bits[j] = (np.int32(k) + 127) << 23 if a > _LO else 0  # 0 bits: the float 0.0
    for j in range(n):
        x[j] *= scale[j]


@njit(**_OPTS)
def rms_norm(x: np.ndarray, weight: np.ndarray, eps: np.float32, out: np.ndarray) -> None:
    """out = x / sqrt(mean(x**2) + eps) * weight, row by row (ImageGPT's layer norm)."""
    rows, c = x.shape
    inv_c = _ONE / _F(c)
    for b in range(rows):
        s = _ZERO
        for i in range(c):
            s += x[b, i] * x[b, i]
        d = np.sqrt(s * inv_c + eps)
        for i in range(c):
            out[b, i] = x[b, i] / d * weight[i]


@njit(**_OPTS)
def add_rms_norm(x: np.ndarray, delta: np.ndarray, weight: np.ndarray, eps: np.float32,
                 out: np.ndarray) -> None:
    """x += delta (the residual branch), then out = rms_norm(x)."""
    rows, c = x.shape
    for b in range(rows):
        for i in range(c):
            x[b, i] += delta[b, i]
    rms_norm(x, weight, eps, out)


@njit(**_OPTS)
def quick_gelu_(h: np.ndarray, scratch: np.ndarray) -> None:
    """h = h * sigmoid(1.702 h) in place, row by row (`scratch`: one row of floats)."""
    rows, c = h.shape
    e = scratch[:c]
    for b in range(rows):
        for i in range(c):
            e[i] = -_QUICK_GELU * h[b, i]
        exp_(e, c, _ZERO, scratch[c : 2 * c])
        for i in range(c):
            h[b, i] = h[b, i] / (_ONE + e[i])


@intrinsic
def _bits_to_float(typingctx, x):
    """Reinterpret the low 32 bits of an integer as a float32 (no conversion)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = builder.trunc(args[0], ir.IntType(32)) if x.bitwidth > 32 else args[0]
        return builder.bitcast(v, ir.FloatType())

    return types.float32(x), codegen


@intrinsic
def _float_to_bits(typingctx, x):
    """Reinterpret a float32 as uint32 bits (no conversion)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(x), codegen


@njit(**_OPTS)
def to_bfloat16(x: np.float32) -> np.uint16:
    """Round a float32 to bfloat16 bits, to nearest with ties to even; a result that would be
    infinite becomes the largest finite bfloat16 of its sign, so an outsized key or value
    cannot turn a softmax into NaNs."""
    u = np.uint32(_float_to_bits(x))
    r = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    if r & np.uint32(0x7FFF) == np.uint32(0x7F80) and u & np.uint32(0x7FFFFFFF) <= np.uint32(
            0x7F800000):
        r -= np.uint32(1)
    return np.uint16(r)


@njit(**_OPTS)
def attend(qkv: np.ndarray, keys: np.ndarray, values: np.ndarray, pos: int,
           out: np.ndarray, scratch: np.ndarray) -> None:
    """Store this step's keys and values at `pos` and attend over positions 0..pos.

    qkv: (B, 3, H, D) float32, queries already scaled; keys: (B*H, L/BLOCK, D, BLOCK) cached
    keys as bfloat16 bits, transposed within blocks of BLOCK positions so that the scores are
    D vector updates over contiguous positions while a tile's keys stay one contiguous run
    (which the hardware prefetcher follows); values: (B*H, L, D) bfloat16 bits; out: (B, H*D);
    scratch: >= 2L floats.
    The cache holds bfloat16 because reading it is most of a step's time and widening a
    bfloat16 to a float is a shift; products and sums are float32.
    """
    rows = qkv.shape[0]
    heads = qkv.shape[2]
    d = qkv.shape[3]
    n = pos + 1
    s = scratch[:n]
    tmp = scratch[n : 2 * n]
    acc = np.empty(d, np.float32)
    for b in range(rows):
        for h in range(heads):
            bh = b * heads + h
            for i in range(d):
                keys[bh, pos // BLOCK, i, pos % BLOCK] = to_bfloat16(qkv[b, 1, h, i])
                values[bh, pos, i] = to_bfloat16(qkv[b, 2, h, i])
            for j0 in range(0, n, BLOCK):
                m = min(BLOCK, n - j0)
                sb = s[j0 : j0 + m]
                for t in range(m):
                    sb[t] = _ZERO
                for i in range(d):
                    q = qkv[b, 0, h, i]
                    row = keys[bh, j0 // BLOCK, i]
                    for t in range(m):
                        sb[t] += q * _bits_to_float(np.uint32(row[t]) << np.uint32(16))
            top = s[0]
            for j in range(1, n):
                top = max(top, s[j])
            exp_(s, n, top, tmp)
            total = _ZERO
            for j in range(n):
                total += s[j]
            for i in range(d):
                acc[i] = _ZERO
            for j in range(n):
                p = s[j]
                row = values[bh, j]
                for i in range(d):
                    acc[i] += p * _bits_to_float(np.uint32(row[i]) << np.uint32(16))
            for i in range(d):
                out[b, h * d + i] = acc[i] / total


@njit(**_OPTS)
def softmax(logits: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
    """out (float64) = softmax of each row of `logits` (float32), normalised in float32."""
    rows, c = logits.shape
    e = scratch[:c]
    for b in range(rows):
        top = logits[b, 0]
        for i in range(1, c):
            top = max(top, logits[b, i])
        for i in range(c):
            e[i] = logits[b, i]
        exp_(e, c, top, scratch[c : 2 * c])
        total = _ZERO
        for i in range(c):
            total += e[i]
        for i in range(c):
            out[b, i] = e[i] / total
