"""Context mode 3's integer rules (igc/codec/expert.py says what the predictor is and why): the
constants, which are part of the mode's definition (docs/format.md, "Context mode 3"), and the
NumPy definition of a step's prediction and update. igc/engines/expert_cpu.py computes the same
integers with numba (tests/test_expert.py holds them equal)."""

from __future__ import annotations

import numpy as np

from igc.engines.integer import TOTAL_BITS, round_div

FEATURES, CONTEXTS, CHANNELS = 10, 12, 3
PQ = 4  # fraction bits of predictions, errors and scales (pixel units)
W_FRAC, W_MAX = 16, 1 << 20  # NLMS weights, Q16, within +-16
LR_W = (41, 11)  # NLMS rate 0.0200
SLOPE_MIN, SLOPE_MAX = -(1 << 16), 16 << 16  # slopes, Q16 log2 units per scale: within [-1, 16]
LR_SLOPE = (59, 13)  # 0.0072 (0.005 per natural-log unit), per symbol, summed over a step
MAG_START, HALVE_AT = 8 << PQ, 256  # the scale's |error| sum starts at 8 for one count
SCALE_MUL, SCALE_ADD = 154, 1229  # scale = (0.6 mean |error| + 0.3 pixels), /256 in Q4
SUM_LIM = 1 << 52  # a step's summed slope gradient saturates here
MISSING = 128  # a pixel without a decoded neighbour is predicted from this value
VOCAB = 256  # the expert predicts 8-bit subpixels

def empty(rows: int) -> tuple[np.ndarray, ...]:
    """prepare's outputs: features (rows, FEATURES), then n, context, scale, prediction, beta."""
    return (np.zeros((rows, FEATURES), np.int64),
            *(np.zeros(rows, np.int64) for _ in range(5)))


def prepare(at, image, error, height, width, weights, mag, count, slope):
    """The NumPy definition of `prepare` (expert_cpu.prepare computes the same)."""
    rows = len(at)
    coded = at >= 0
    p = np.where(coded, at, 0).astype(np.int64)
    c, x, y = p % CHANNELS, (p // CHANNELS) % width, p // (CHANNELS * width)

    def pixel(yy, xx, ch, fallback):
        inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        v = image[np.where(inside, (yy * width + xx) * CHANNELS + ch, 0)].astype(np.int64)
        return np.where(inside & (v >= 0), v, fallback)

    vw = pixel(y, x - 1, c, pixel(y - 1, x, c, np.full(rows, MISSING)))
    vn = pixel(y - 1, x, c, vw)
    vnw, vne = pixel(y - 1, x - 1, c, vn), pixel(y - 1, x + 1, c, vn)
    lo, hi = np.minimum(vw, vn), np.maximum(vw, vn)
    med = np.where(vnw >= hi, lo, np.where(vnw <= lo, hi, vw + vn - vnw))
    inter = c > 0
    prev = np.maximum(c - 1, 0)
    cur = pixel(y, x, prev, vw)
    f = np.stack([vw, vn, vnw, vne, vw + vn - vnw, med,
                  vw + cur - pixel(y, x - 1, prev, cur), vn + cur - pixel(y - 1, x, prev, cur),
                  vnw + cur - pixel(y - 1, x - 1, prev, cur),
                  vne + cur - pixel(y - 1, x + 1, prev, cur)], axis=1)
    n = np.where(inter, FEATURES, 6)
    used = np.arange(FEATURES)[None, :] < n[:, None]
    f = np.where(used, f, 0)
    total = f.sum(axis=1)
    feats = np.where(used, n[:, None] * f - total[:, None], 0)  # n (f - mean): exact
    activity = ((np.abs(vw - vnw) + np.abs(vn - vnw) + np.abs(vn - vne)) << PQ) + np.where(
        inter, 2 * np.abs(error[p - 1].astype(np.int64)), 0)
    thresholds = ((1 << np.arange(CONTEXTS - 1)) - 1) << PQ
    ctx = (activity[:, None] > thresholds[None, :]).sum(axis=1)
    scale = (SCALE_MUL * mag[c, ctx] + SCALE_ADD * count[c, ctx]) // (count[c, ctx] << 8)
    num = (total << W_FRAC) + (weights[c] * feats).sum(axis=1)
    pred = np.clip(round_div(num, n << (W_FRAC - PQ)), 0, 255 << PQ)
    beta = np.where(coded, (slope[c, ctx] << 8) // scale, 0)
    return feats, n, ctx, scale, np.where(coded, pred, 0), beta


def observe(rows, symbols, freqs, at, feats, n, ctx, scale, pred, image, error, weights, mag,
             count, slope):
    """The NumPy definition of `observe` (expert_cpu.observe computes the same)."""
    if len(rows) == 0:
        return
    p, f, nn, b, s, pr = at[rows], feats[rows], n[rows], ctx[rows], scale[rows], pred[rows]
    c = p % CHANNELS
    err = (symbols << PQ) - pr
    norm = nn * nn + (f * f).sum(axis=1)
    dw = round_div(2 * LR_W[0] * (nn * err)[:, None] * f, norm[:, None])
    distance = np.abs((np.arange(VOCAB) << PQ)[None, :] - pr[:, None])
    # the code length's gradient in the slope: sum_v r_v * -d_v, r = 2**24 [v = x] - f_v
    g = (freqs[rows] * distance).sum(axis=1) - (distance[np.arange(len(rows)), symbols]
                                               << TOTAL_BITS)
    grad = round_div(g << PQ, s)
    dslope, dmag = np.zeros_like(slope), np.zeros_like(mag)
    dcount, dweights = np.zeros_like(count), np.zeros_like(weights)
    np.add.at(dweights, c, dw)
    np.add.at(dslope, (c, b), grad)
    np.add.at(dmag, (c, b), np.abs(err))
    np.add.at(dcount, (c, b), 1)
    weights[:] = np.clip(weights + dweights, -W_MAX, W_MAX)
    num, shift = LR_SLOPE
    step = round_div(np.clip(dslope, -SUM_LIM, SUM_LIM) * num,
                     np.int64(1) << (shift + TOTAL_BITS + PQ - 16))
    slope[:] = np.clip(slope + step, SLOPE_MIN, SLOPE_MAX)
    mag += dmag
    count += dcount
    over = count > HALVE_AT
    mag[over] >>= 1
    count[over] >>= 1
    image[p] = symbols
    error[p] = err
