"""Compiled loops of the training data path (numba)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def cut_tiles(flat: np.ndarray, corner: np.ndarray, stride: np.ndarray, flip: np.ndarray,
              out: np.ndarray) -> None:
    """out[i] = the (T, T, 3) window of `flat` whose top-left subpixel is at `corner[i]`, rows
    `stride[i]` apart, mirrored left-right where `flip[i]`."""
    n, t = out.shape[0], out.shape[1]
    for i in range(n):
        for r in range(t):
            row = corner[i] + r * stride[i]
            for x in range(t):
                src = row + 3 * (t - 1 - x if flip[i] else x)
                for c in range(3):
                    out[i, r, x, c] = flat[src + c]
