"""Context mode 3's predictor (igc/codec/expert.py) as numba loops: the same integers as the
NumPy definition in igc/engines/expert.py, bit for bit (tests/test_expert.py compares them), at
a few microseconds a step where the definition's array operations take a hundred."""

from __future__ import annotations

import numpy as np

from igc.engines.expert import (
    CHANNELS,
    CONTEXTS,
    FEATURES,
    HALVE_AT,
    LR_SLOPE,
    LR_W,
    MISSING,
    PQ,
    SCALE_ADD,
    SCALE_MUL,
    SLOPE_MAX,
    SLOPE_MIN,
    SUM_LIM,
    VOCAB,
    W_FRAC,
    W_MAX,
)
from igc.engines.integer import TOTAL_BITS
from igc.engines.kernel_cache import njit
from igc.engines.scalars import OPTS as _OPTS

SLOPE_SHIFT = LR_SLOPE[1] + TOTAL_BITS + PQ - 16


@njit(inline="always", **_OPTS)
def _round_div(a, b):
    """integer.round_div of one value (b > 0)."""
    return (2 * a + b) // (2 * b)


@njit(inline="always", **_OPTS)
def _pixel(image, height, width, y, x, ch, fallback):
    if 0 <= y < height and 0 <= x < width:
        v = np.int64(image[(y * width + x) * CHANNELS + ch])
        if v >= 0:
            return v
    return fallback


@njit(**_OPTS)
def prepare(at, image, error, height, width, weights, mag, count, slope, feats, n, ctx, scale,
            pred, beta):
    """expert.prepare, into the output arrays."""
    f = np.zeros(FEATURES, np.int64)
    feats[:] = 0
    for i in range(at.shape[0]):
        p = np.int64(at[i])
        coded = p >= 0
        if not coded:
            p = np.int64(0)
        c, x, y = p % CHANNELS, (p // CHANNELS) % width, p // (CHANNELS * width)
        vw = _pixel(image, height, width, y, x - 1, c,
                    _pixel(image, height, width, y - 1, x, c, np.int64(MISSING)))
        vn = _pixel(image, height, width, y - 1, x, c, vw)
        vnw = _pixel(image, height, width, y - 1, x - 1, c, vn)
        vne = _pixel(image, height, width, y - 1, x + 1, c, vn)
        lo, hi = min(vw, vn), max(vw, vn)
        med = lo if vnw >= hi else (hi if vnw <= lo else vw + vn - vnw)
        f[0], f[1], f[2], f[3], f[4], f[5] = vw, vn, vnw, vne, vw + vn - vnw, med
        k = 6
        activity = (abs(vw - vnw) + abs(vn - vnw) + abs(vn - vne)) << PQ
        if c > 0:
            cur = _pixel(image, height, width, y, x, c - 1, vw)
            f[6] = vw + cur - _pixel(image, height, width, y, x - 1, c - 1, cur)
            f[7] = vn + cur - _pixel(image, height, width, y - 1, x, c - 1, cur)
            f[8] = vnw + cur - _pixel(image, height, width, y - 1, x - 1, c - 1, cur)
            f[9] = vne + cur - _pixel(image, height, width, y - 1, x + 1, c - 1, cur)
            k = FEATURES
            activity += 2 * abs(np.int64(error[p - 1]))
        total = np.int64(0)
        for j in range(k):
            total += f[j]
        num = total << W_FRAC
        for j in range(k):
            feats[i, j] = k * f[j] - total
            num += weights[c, j] * feats[i, j]
        b = 0
        while b < CONTEXTS - 1 and activity > (((np.int64(1) << b) - 1) << PQ):
            b += 1
        s = (SCALE_MUL * mag[c, b] + SCALE_ADD * count[c, b]) // (count[c, b] << 8)
        n[i], ctx[i], scale[i] = k, b, s
        if coded:
            pred[i] = min(max(_round_div(num, np.int64(k) << (W_FRAC - PQ)), 0), 255 << PQ)
            beta[i] = (slope[c, b] << 8) // s
        else:
            pred[i], beta[i] = 0, 0


@njit(**_OPTS)
def observe(rows, symbols, freqs, at, feats, n, ctx, scale, pred, image, error, weights, mag,
            count, slope):
    """expert.observe: the step's summed updates, then the pixels."""
    dweights = np.zeros((CHANNELS, FEATURES), np.int64)
    dslope = np.zeros((CHANNELS, CONTEXTS), np.int64)
    dmag = np.zeros((CHANNELS, CONTEXTS), np.int64)
    dcount = np.zeros((CHANNELS, CONTEXTS), np.int64)
    for r in range(rows.shape[0]):
        i = rows[r]
        p, k, b, x = at[i], n[i], ctx[i], symbols[r]
        c = p % CHANNELS
        err = (x << PQ) - pred[i]
        norm = k * k
        for j in range(k):
            norm += feats[i, j] * feats[i, j]
        for j in range(k):
            dweights[c, j] += _round_div(2 * LR_W[0] * k * err * feats[i, j], norm)
        g = np.int64(0)
        for v in range(VOCAB):
            g += freqs[i, v] * abs((v << PQ) - pred[i])
        g -= abs((x << PQ) - pred[i]) << TOTAL_BITS
        dslope[c, b] += _round_div(g << PQ, scale[i])
        dmag[c, b] += abs(err)
        dcount[c, b] += 1
    for c in range(CHANNELS):
        for j in range(FEATURES):
            weights[c, j] = min(max(weights[c, j] + dweights[c, j], -W_MAX), W_MAX)
        for b in range(CONTEXTS):
            t = min(max(dslope[c, b], -SUM_LIM), SUM_LIM) * LR_SLOPE[0]
            step = _round_div(t, np.int64(1) << SLOPE_SHIFT)
            slope[c, b] = min(max(slope[c, b] + step, SLOPE_MIN), SLOPE_MAX)
            mag[c, b] += dmag[c, b]
            count[c, b] += dcount[c, b]
            if count[c, b] > HALVE_AT:
                mag[c, b] >>= 1
                count[c, b] >>= 1
    for r in range(rows.shape[0]):
        i = rows[r]
        image[at[i]] = symbols[r]
        error[at[i]] = (symbols[r] << PQ) - pred[i]
