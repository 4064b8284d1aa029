"""numerics 2's rounding rules on single int64 values, for numba kernels: the reference's
NumPy rules (igc/engines/integer.py) written as scalar code, NumPy's semantics reproduced where
they matter (shifts by 64 or more, floor division). Shared by the cpu engine
(igc/engines/integer_cpu.py) and context mode 1's kernels (igc/engines/adapt_cpu.py)."""

from __future__ import annotations

import numpy as np

from igc.engines.integer import SCORE_FRAC, exp_table
from igc.engines.kernel_cache import njit

OPTS = {"nogil": True, "cache": True, "boundscheck": False, "error_model": "numpy"}
FRAC_MASK = (1 << SCORE_FRAC) - 1
EXP = exp_table()


@njit(inline="always", **OPTS)
def shift_round(v: np.int64, s: np.int64, lim: np.int64) -> np.int64:
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


@njit(inline="always", **OPTS)
def shift_round_small(v: np.int64, s: np.int64, lim: np.int64) -> np.int64:
    """shift_round for -62 <= s <= 63 (no special cases), branch-free so loops vectorise."""
    right = max(s, 1)
    down = (v + (np.int64(1) << (right - 1))) >> right
    left = min(max(-s, 0), 62)
    bound = lim >> left
    up = min(max(v, -bound), bound) << left
    r = down if s > 0 else up
    return min(max(r, -lim), lim)


@njit(inline="always", **OPTS)
def bit_length(v: np.int64) -> np.int64:
    v = abs(v)
    n = np.int64(0)
    for b in (32, 16, 8, 4, 2, 1):
        if v >= np.int64(1) << b:
            n += b
            v >>= b
    return n + (1 if v > 0 else 0)


@njit(inline="always", **OPTS)
def isqrt(n: np.int64) -> np.int64:
    """floor(sqrt(n)) for 0 <= n < 2**62: the float root, corrected to the exact one."""
    r = np.int64(np.sqrt(np.float64(n)))
    while r * r > n:
        r -= 1
    while (r + 1) * (r + 1) <= n:
        r += 1
    return r


@njit(inline="always", **OPTS)
def floor_div(num: np.int64, den: np.int64) -> np.int64:
    """floor(num / den) for den > 0, |num| < 2**62 and a quotient below 2**40: the float
    quotient is then within 2**-11 of the exact one, so one step each way corrects its floor.
    (A division instruction per element costs several times more, and does not vectorise.)"""
    q = np.int64(np.floor(np.float64(num) / np.float64(den)))
    q -= np.int64(1) if q * den > num else np.int64(0)
    q += np.int64(1) if (q + 1) * den <= num else np.int64(0)
    return q


@njit(inline="always", **OPTS)
def exp2_neg(z: np.int64) -> np.int64:
    """integer.exp2_neg for 0 <= z: the table's entries are below 2**31, so shifting by
    min(k, 62) already gives the reference's 0 for k >= 63; no branch, so loops vectorise."""
    return EXP[z & FRAC_MASK] >> min(z >> SCORE_FRAC, 62)


@njit(inline="always", **OPTS)
def row_shift(v: np.ndarray, lo: int, hi: int) -> np.int64:
    """narrow's shift of v[lo:hi]: the largest magnitude gets 15 bits (0 for a row of zeros)."""
    top = np.int64(0)
    for i in range(lo, hi):
        top = max(top, abs(v[i]))
    return bit_length(top) - 15 if top > 0 else np.int64(0)
