"""Context mode 1's per-symbol rules (igc/codec/adapt.py) as numba loops: the same integers as
the NumPy definition there, bit for bit (tests/test_adapt.py compares them), without the dozens
of temporary arrays a step of NumPy makes. The products with the online head stay in the codec
(float64 BLAS on integers whose sums are exact)."""

from __future__ import annotations

import numpy as np
from numba import njit

from igc.engines.integer import FX, SCORE_FRAC, SCORE_LIM, TOTAL_BITS
from igc.engines.scalars import OPTS as _OPTS
from igc.engines.scalars import bit_length as _bit_length
from igc.engines.scalars import exp2_neg as _exp2_neg
from igc.engines.scalars import floor_div as _floor_div
from igc.engines.scalars import shift_round_small as _shift_round_small

Q = SCORE_FRAC


@njit(inline="always", **_OPTS)
def _log2_q12(v: np.int64, table: np.ndarray) -> np.int64:
    """adapt.log2_q12 of one integer v >= 1."""
    n = _bit_length(v) - 1
    mant = v >> (n - 12) if n >= 12 else v << (12 - n)
    return (n << Q) + table[mant - 4096]


@njit(**_OPTS)
def predict(logits, head, temp, calib, head_shift, u_clamp, table, u, j, w, out):
    """Each row's adapted frequencies into `out`, keeping -log2 p (`u`), the knot (`j`) and
    its weight (`w`) for the update. logits (B, V) Q16; head (B, V) the exact U·[h, 1]."""
    rows, v = logits.shape
    knots = calib.shape[0]
    spare = (np.int64(1) << TOTAL_BITS) - v
    for b in range(rows):
        top = logits[b, 0]
        for k in range(1, v):
            top = max(top, logits[b, k])
        total = np.int64(0)
        for k in range(v):
            z = _shift_round_small(top - logits[b, k], FX - Q, SCORE_LIM)
            u[b, k] = z
            total += _exp2_neg(z)
        lse = _log2_q12(total, table) - (30 << Q)
        best = np.int64(-(1 << 62))
        for k in range(v):
            uk = min(u[b, k] + lse, u_clamp)
            u[b, k] = uk
            knot = min(uk, (knots - 1) << Q)
            jk = min(knot >> Q, knots - 2)
            wk = knot - (jk << Q)
            j[b, k], w[b, k] = jk, wk
            s = -uk + ((temp * -uk) >> 24)
            s += (calib[jk] * ((1 << Q) - wk) + calib[jk + 1] * wk) >> 24
            s += head[b, k] >> head_shift
            out[b, k] = s
            best = max(best, s)
        # integer.frequencies of the scores (given in Q16 as score << 4: z is exact)
        total = np.int64(0)
        for k in range(v):
            e = _exp2_neg(min(best - out[b, k], SCORE_LIM))
            out[b, k] = e
            total += e
        arg = 0
        for k in range(1, v):
            if out[b, k] > out[b, arg]:
                arg = k
        s = np.int64(0)
        for k in range(v):
            f = 1 + _floor_div(out[b, k] * spare, total)
            out[b, k] = f
            s += f
        out[b, arg] += (np.int64(1) << TOTAL_BITS) - s


@njit(**_OPTS)
def gradients(rows, symbols, f, u, j, w, h1, q_shift, grad_g, scaled):
    """The temperature's summed gradient (returned), the calibration's (into grad_g) and each
    row's NLMS-scaled residual (into scaled, float64: the head's gradient is scaled.T @ h1)."""
    v = f.shape[1]
    grad_a = np.int64(0)
    for i in range(rows.shape[0]):
        b = rows[i]
        norm = np.int64(0)
        for c in range(h1.shape[1]):
            norm += h1[b, c] * h1[b, c]
        x = symbols[i]
        for k in range(v):
            r = -f[b, k] + ((np.int64(1) << TOTAL_BITS) if k == x else np.int64(0))
            grad_a += r * -u[b, k]
            grad_g[j[b, k]] += r * ((1 << Q) - w[b, k])
            grad_g[j[b, k] + 1] += r * w[b, k]
            scaled[i, k] = np.float64(_floor_div(2 * (r << q_shift) + norm, 2 * norm))
    return grad_a


@njit(**_OPTS)
def head_product(h1, weights_t, out):
    """out = h1 @ weights_t as int64: (B, C+1) integers times (C+1, V) integers held in float64,
    every partial sum an integer below 2**53 (so exact in this or any order)."""
    rows, inputs = h1.shape
    v = weights_t.shape[1]
    acc = np.empty(v)
    for b in range(rows):
        acc[:] = 0.0
        for c in range(inputs):
            hc = np.float64(h1[b, c])
            for k in range(v):
                acc[k] += hc * weights_t[c, k]
        for k in range(v):
            out[b, k] = np.int64(acc[k])


@njit(**_OPTS)
def head_gradient(scaled, h1, rows_exact, out):
    """out (V, C+1) int64 += scaled.T @ h1, summed in float64 over blocks of `rows_exact` rows
    (whose sums stay below 2**53) and in int64 across blocks. Rows' zero entries are skipped."""
    n, v = scaled.shape
    inputs = h1.shape[1]
    acc = np.zeros((v, inputs))
    for i0 in range(0, n, rows_exact):
        acc[:, :] = 0.0
        for i in range(i0, min(n, i0 + rows_exact)):
            for k in range(v):
                s = scaled[i, k]
                if s != 0.0:
                    for c in range(inputs):
                        acc[k, c] += s * np.float64(h1[i, c])
        for k in range(v):
            for c in range(inputs):
                out[k, c] += np.int64(acc[k, c])
