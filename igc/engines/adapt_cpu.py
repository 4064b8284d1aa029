"""Context mode 1's per-symbol rules (igc/codec/adapt.py) as numba loops: the same integers as
the NumPy definition there, bit for bit (tests/test_adapt.py compares them), without the dozens
of temporary arrays a step of NumPy makes. The online head's products are float64 loops here,
as the definition's (every partial sum an integer below 2**53: exact in any order), shaped so
that the compiler puts them in SIMD lanes (scripts/adapt_products.py times them)."""

from __future__ import annotations

import numpy as np

from igc.engines import expert_cpu
from igc.engines.integer import FX, SCORE_FRAC, SCORE_LIM, TOTAL_BITS
from igc.engines.kernel_cache import njit
from igc.engines.scalars import OPTS as _OPTS
from igc.engines.scalars import bit_length as _bit_length
from igc.engines.scalars import exp2_neg as _exp2_neg
from igc.engines.scalars import floor_div as _floor_div
from igc.engines.scalars import shift_round_small as _shift_round_small

Q = SCORE_FRAC
# the head's products in float64 (exact: every partial sum is an integer below 2**53, so any
# order the compiler picks gives the same integers), which lets it use SIMD lanes
_FAST = {**_OPTS, "fastmath": True}


@njit(inline="always", **_OPTS)
def _log2_q12(v: np.int64, table: np.ndarray) -> np.int64:
    """adapt.log2_q12 of one integer v >= 1."""
    n = _bit_length(v) - 1
    mant = v >> (n - 12) if n >= 12 else v << (12 - n)
    return (n << Q) + table[mant - 4096]


@njit(**_OPTS)
def predict(logits, head, temp, calib, head_shift, u_clamp, table, pred, beta, u, j, w, out):
    """Each row's adapted frequencies into `out`, keeping -log2 p (`u`), the knot (`j`) and
    its weight (`w`) for the update. logits (B, V) Q16; head (B, V) the exact U·[h, 1];
    context mode 3's expert term beta * |16 v - pred| >> 12 where a row's beta is not 0."""
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
            if beta[b] != 0:
                s -= (beta[b] * abs((np.int64(k) << 4) - pred[b])) >> 12
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
def gradients(rows, symbols, f, u, j, w, h1, q_shift, grad_g, grad_u):
    """The temperature's summed gradient (returned), the calibration's (into grad_g) and the
    head's (into grad_u, (V, C+1)): each row's NLMS-scaled residual q times [h, 1], summed over
    the rows (|q h| < 2**40: every partial sum of a block of ROWS rows is an integer below
    2**53, exact in float64 in any order, as the definition's blocks)."""
    n = rows.shape[0]
    q, hf = np.empty((n, f.shape[1])), np.empty((n, h1.shape[1]))
    grad_a = residuals(rows, symbols, f, u, j, w, h1, q_shift, grad_g, q, hf)
    outer_sums(q, hf, grad_u)
    return grad_a


@njit(**_OPTS)
def residuals(rows, symbols, f, u, j, w, h1, q_shift, grad_g, q, hf):
    """`gradients` up to the head's sums: the temperature's gradient (returned), the
    calibration's (into grad_g), each row's NLMS-scaled residual (q, (rows, V)) and [h, 1]
    (hf, (rows, C+1)), both as float64 (exact integers)."""
    v, inputs = f.shape[1], h1.shape[1]
    grad_a = np.int64(0)
    for i in range(rows.shape[0]):
        b = rows[i]
        norm = np.int64(0)
        for c in range(inputs):
            norm += h1[b, c] * h1[b, c]
            hf[i, c] = h1[b, c]
        x = symbols[i]
        for k in range(v):
            r = -f[b, k] + ((np.int64(1) << TOTAL_BITS) if k == x else np.int64(0))
            grad_a += r * -u[b, k]
            grad_g[j[b, k]] += r * ((1 << Q) - w[b, k])
            grad_g[j[b, k] + 1] += r * w[b, k]
            q[i, k] = _floor_div(2 * (r << q_shift) + norm, 2 * norm)
    return grad_a


ROWS = 4096  # rows per float64 block of the head's gradient (igc.codec.adapt.ROWS_EXACT)


@njit(**_OPTS)
def outer_sums(q, hf, grad_u):
    """grad_u[k, c] += the sum of q[i, k] * hf[i, c] over all rows, in float64 blocks of ROWS
    rows (each block's partial sums exact), the blocks added in int64."""
    n = q.shape[0]
    for i0 in range(0, n, ROWS):
        _outer_sum(q, hf, i0, min(i0 + ROWS, n), grad_u)


@njit(**_FAST)
def _outer_sum(q, hf, i0, i1, grad_u):
    """grad_u[k, c] += the sum of q[i, k] * hf[i, c] over rows i0 .. i1 - 1, in float64 (exact:
    see `gradients`)."""
    for k in range(q.shape[1]):
        _outer_row(q, hf, i0, i1, k, grad_u[k])


@njit(**_FAST)
def _outer_row(q, hf, i0, i1, k, out):
    """out[c] += the sum of q[i, k] * hf[i, c] over rows i0 .. i1 - 1: four rows a sweep so
    that the loop over c runs in SIMD lanes, each four rows' sum exact in float64 and added in
    int64."""
    inputs = hf.shape[1]
    i = i0
    while i + 4 <= i1:
        q0, q1, q2, q3 = q[i, k], q[i + 1, k], q[i + 2, k], q[i + 3, k]
        for c in range(inputs):
            out[c] += np.int64(q0 * hf[i, c] + q1 * hf[i + 1, c] + q2 * hf[i + 2, c]
                               + q3 * hf[i + 3, c])
        i += 4
    while i < i1:
        q0 = q[i, k]
        for c in range(inputs):
            out[c] += np.int64(q0 * hf[i, c])
        i += 1


@njit(**_FAST)
def head_product(h1, weights, out):
    """out = h1 @ weights.T: (B, C+1) by (V, C+1) integers, every partial sum below 2**53, so
    float64 gives them exactly in any order. Four rows by two symbols a sweep over the inputs
    (eight sums in SIMD lanes, each weight loaded once for four rows)."""
    rows, inputs = h1.shape
    v = weights.shape[0]
    hf = np.zeros((rows + 3, inputs))
    for b in range(rows):
        for c in range(inputs):
            hf[b, c] = h1[b, c]
    for b in range(0, rows, 4):
        n = min(4, rows - b)
        for k in range(0, v, 2):
            k1 = min(k + 1, v - 1)  # an odd last symbol computes itself twice
            a0 = a1 = a2 = a3 = 0.0
            e0 = e1 = e2 = e3 = 0.0
            for c in range(inputs):
                x, y = np.float64(weights[k, c]), np.float64(weights[k1, c])
                h0, h1_, h2, h3 = hf[b, c], hf[b + 1, c], hf[b + 2, c], hf[b + 3, c]
                a0 += h0 * x
                a1 += h1_ * x
                a2 += h2 * x
                a3 += h3 * x
                e0 += h0 * y
                e1 += h1_ * y
                e2 += h2 * y
                e3 += h3 * y
            out[b, k], out[b, k1] = np.int64(a0), np.int64(e0)
            if n > 1:
                out[b + 1, k], out[b + 1, k1] = np.int64(a1), np.int64(e1)
            if n > 2:
                out[b + 2, k], out[b + 2, k1] = np.int64(a2), np.int64(e2)
            if n > 3:
                out[b + 3, k], out[b + 3, k1] = np.int64(a3), np.int64(e3)


BIG = np.int64(1) << 33  # a mean step this large moves any state to its bound (all < 2**32)


@njit(inline="always", **_OPTS)
def _mean_step(total, num, shift, count, lim):
    """adapt._mean_step of one value: round(num * total / (count * 2**shift)), total saturated
    at +-lim first; a step of 2**33 or more comes back as +-2**33. `learn` clamps the state to
    bounds below 2**32, so that changes nothing, and keeps the quotient where the float
    division of `floor_div` is exact after its correction (no division instruction)."""
    t = min(max(total, -lim), lim) * num
    den = np.int64(count) << shift
    n = 2 * t + den
    if abs(np.float64(n)) >= np.float64(2 * den) * 8589934592.0:  # 2**33
        return -BIG if n < 0 else BIG
    return _floor_div(n, 2 * den)


@njit(**_OPTS)
def learn(state, grad, num, shift, count, lim, low, high):
    """state += the step's mean of `grad` (adapt._mean_step), clamped to [low, high] (bounds
    below 2**32 in magnitude); in place, both flat views of the same shape. A power-of-two
    count (modes 2 and 3 divide by 32 rows, mode 1 by a batch of 2**k) makes the divisor a
    power of two: the rounded quotient is then a shift, exact and twice as fast, and a
    quotient too large for the clamp to leave is clamped all the same."""
    if count & (count - 1) == 0 and shift >= 0:
        bits = shift  # round(t / 2**bits) = (t + 2**(bits - 1)) >> bits
        while count > 1:
            count >>= 1
            bits += 1
        half = (np.int64(1) << bits) >> 1
        for i in range(state.shape[0]):
            t = min(max(grad[i], -lim), lim) * num
            state[i] = min(max(state[i] + ((t + half) >> bits), low), high)
    else:
        for i in range(state.shape[0]):
            state[i] = min(max(state[i] + _mean_step(grad[i], num, shift, count, lim), low),
                           high)


@njit(**_OPTS)
def adapted(hidden, one, logits, weights, temp, calib, head_shift, u_clamp, table, pred, beta,
            h1, head, u, j, w, out):
    """Some rows' adapted frequencies in one call (OnlineAdaptation.fill): [h, 1] into h1,
    the online head's product into `head`, then `predict`."""
    rows, chans = hidden.shape
    for b in range(rows):
        for c in range(chans):
            h1[b, c] = hidden[b, c]
        h1[b, chans] = one
    head_product(h1, weights, head)
    predict(logits, head, temp, calib, head_shift, u_clamp, table, pred, beta, u, j, w, out)


@njit(**_OPTS)
def learn_all(temp, calib, head, grad_a, grad_g, grad_u, rates, count, lim, bounds):
    """Move one class's temperature (a 1-element view), calibration and head (flat) by their
    summed gradients: rates[i] = (numerator, shift), bounds[i] = (low, high), i = 0, 1, 2."""
    learn(temp, grad_a, rates[0, 0], rates[0, 1], count, lim, bounds[0, 0], bounds[0, 1])
    learn(calib, grad_g, rates[1, 0], rates[1, 1], count, lim, bounds[1, 0], bounds[1, 1])
    learn(head, grad_u, rates[2, 0], rates[2, 1], count, lim, bounds[2, 0], bounds[2, 1])


@njit(**_OPTS)
def observe(rows, symbols, f, u, j, w, h1, q_shift, grad_g, temp, calib, head, rates, count,
            lim, bounds):
    """A step's update in one call (OnlineAdaptation.observe, rows not split): the gradients
    of the coded rows, then `learn_all`'s moves. The head moves one row of its weights at a
    time, as soon as that row's gradient is summed: `learn` is elementwise, so these are the
    integers of summing the whole gradient first, without writing it out and reading it back."""
    grad_g[:] = 0
    n, v, inputs = rows.shape[0], f.shape[1], h1.shape[1]
    q, hf = np.empty((n, v)), np.empty((n, inputs))
    grad_a = np.empty(1, np.int64)
    grad_a[0] = residuals(rows, symbols, f, u, j, w, h1, q_shift, grad_g, q, hf)
    learn(temp, grad_a, rates[0, 0], rates[0, 1], count, lim, bounds[0, 0], bounds[0, 1])
    learn(calib, grad_g, rates[1, 0], rates[1, 1], count, lim, bounds[1, 0], bounds[1, 1])
    row = np.empty(inputs, np.int64)
    for k in range(v):
        row[:] = 0
        for i0 in range(0, n, ROWS):
            _outer_row(q, hf, i0, min(i0 + ROWS, n), k, row)
        learn(head[k * inputs : (k + 1) * inputs], row, rates[2, 0], rates[2, 1], count, lim,
              bounds[2, 0], bounds[2, 1])


@njit(**_OPTS)
def frequencies_step(hidden, one, logits, weights, temp, calib, head_shift, u_clamp, table,
                     expert_on, at, image, error, height, width, e_weights, mag, count, slope,
                     feats, n, ctx, scale, pred, beta, h1, head, u, j, w, out):
    """A step's `OnlineAdaptation.frequencies` in one call, rows not split: context mode 3's
    expert computes its terms (`expert_on`, the predictor's state and `at`, each row's pixel;
    otherwise pred and beta are zeros), then `adapted`."""
    if expert_on:
        expert_cpu.prepare(at, image, error, height, width, e_weights, mag, count, slope,
                           feats, n, ctx, scale, pred, beta)
    adapted(hidden, one, logits, weights, temp, calib, head_shift, u_clamp, table, pred, beta,
            h1, head, u, j, w, out)


@njit(**_OPTS)
def observe_step(rows, symbols, f, u, j, w, h1, q_shift, grad_g, temp, calib, head, rates,
                 count, lim, bounds, expert_on, at, feats, n, ctx, scale, pred, image, error,
                 e_weights, mag, e_count, slope):
    """A step's `OnlineAdaptation.observe` in one call, rows not split: the expert learns
    from the coded rows and records their pixels (`expert_on`), then `observe`."""
    if expert_on:
        for i in range(rows.shape[0]):
            if at[rows[i]] < 0:
                raise ValueError("symbols observed at positions the window layout does not "
                                 "code")
        expert_cpu.observe(rows, symbols, f, at, feats, n, ctx, scale, pred, image, error,
                           e_weights, mag, e_count, slope)
    observe(rows, symbols, f, u, j, w, h1, q_shift, grad_g, temp, calib, head, rates, count,
            lim, bounds)


@njit(**_OPTS)
def encode_block(t0, hidden, logits, symbols, coded, one, temp, calib, head, head_shift,
                 u_clamp, table, q_shift, rates, min_rows, lim, bounds, expert_on, at_steps,
                 image, error, height, width, e_weights, mag, count, slope, feats, n, ctx, scale,
                 pred, beta, h1, head_out, u, j, w, f, grad_g, out_freqs, out_symbols):
    """An encoder's steps t0 .. t0 + P - 1 of one group in one call, where every input is
    known: per step `frequencies_step` on every row, then `observe_step` on the coded rows:
    the calls `OnlineAdaptation.frequencies` and `observe` make step by step, in the same
    order on the same state, so the same integers.

    hidden (B, P, C) and logits (B, P, V) from the model's block; symbols (B, P) int64 and
    coded (B, P) bool; temp (3,), calib (3, K), head (3, V, C + 1): the whole state;
    at_steps (P, B) int32: the expert's pixel per row and step. The coded rows' frequencies
    and symbols go to out_freqs (P * B, V) and out_symbols in step order, rows in order;
    returns how many."""
    rows, steps = coded.shape
    k = 0
    index = np.empty(rows, np.int64)
    picked = np.empty(rows, np.int64)
    for p in range(steps):
        c = (t0 + p) % 3
        at = at_steps[p]
        frequencies_step(hidden[:, p], one, logits[:, p], head[c], temp[c], calib[c],
                         head_shift, u_clamp, table, expert_on, at, image, error, height, width,
                         e_weights, mag, count, slope, feats, n, ctx, scale, pred, beta, h1,
                         head_out, u, j, w, f)
        m = 0
        for r in range(rows):
            if coded[r, p]:
                index[m] = r
                picked[m] = symbols[r, p]
                out_symbols[k + m] = symbols[r, p]
                out_freqs[k + m] = f[r]
                m += 1
        if m == 0:
            continue
        k += m
        observe_step(index[:m], picked[:m], f, u, j, w, h1, q_shift, grad_g, temp[c : c + 1],
                     calib[c], head[c].reshape(-1), rates,
                     max(m, min_rows), lim, bounds, expert_on, at, feats, n, ctx, scale, pred,
                     image, error, e_weights, mag, count, slope)
    return k
