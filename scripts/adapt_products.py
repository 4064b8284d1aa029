"""The adaptation's online-head products (context modes 1-4), measured against other ways of
computing them (docs/design.md, "One position per pixel", the encoder's blocks).

    python scripts/adapt_products.py [--rows 8] [--channels 128] [--repeat 3000]

Context mode 3's adaptation multiplies each row's head input [h, 1] by a (256, C + 1) integer
head per step (`igc.engines.adapt_cpu.head_product`) and adds the same-sized gradient back
(`outer_sums`). Every partial sum of those products is an integer below 2**53
(igc.codec.adapt), so float64 arithmetic in any order gives the same integers. This times the
kernels as they are (float64 loops shaped for SIMD lanes) against the int64 loops they replaced
(kept here), plain numba float64 loops, and a BLAS product (numpy's matmul) on the state's layout
and on a transposed copy, on inputs at the definition's bounds, and checks every result
exactly. Run it on an idle core: it times microseconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit
from script_env import cpu_model

from igc.codec.adapt import U_MAX
from igc.engines import adapt_cpu


@njit(nogil=True)
def int64_product(h1, w, out):
    """The head product before (session 28): int64 loops."""
    for b in range(h1.shape[0]):
        for k in range(w.shape[0]):
            acc = np.int64(0)
            for c in range(h1.shape[1]):
                acc += h1[b, c] * w[k, c]
            out[b, k] = acc


@njit(nogil=True)
def int64_gradient(q, h1, grad):
    """The head gradient's sums before (session 28): int64 loops, row by row."""
    for i in range(q.shape[0]):
        for k in range(q.shape[1]):
            if q[i, k] != 0:
                for c in range(h1.shape[1]):
                    grad[k, c] += q[i, k] * h1[i, c]


@njit(nogil=True, fastmath=True)
def float_rows(h1, w, out):
    """Each output a float64 reduction over the inputs (fastmath: reassociated, exact here)."""
    for b in range(h1.shape[0]):
        for k in range(w.shape[0]):
            acc = 0.0
            for c in range(h1.shape[1]):
                acc += np.float64(h1[b, c]) * np.float64(w[k, c])
            out[b, k] = np.int64(acc)


@njit(nogil=True, fastmath=True)
def float_axpy(hf, wt, out):
    """Each row an accumulation of the transposed head's rows (the loop a compiler vectorises)."""
    acc = np.empty(wt.shape[1])
    for b in range(hf.shape[0]):
        acc[:] = 0.0
        for c in range(hf.shape[1]):
            hb = hf[b, c]
            for k in range(wt.shape[1]):
                acc[k] += hb * wt[c, k]
        for k in range(wt.shape[1]):
            out[b, k] = np.int64(acc[k])


def timed(call, repeat: int) -> float:
    call()
    t = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - t) / repeat * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3000)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    h1 = rng.integers(-(2**15), 2**15, (a.rows, a.channels + 1))
    w = rng.integers(-U_MAX, U_MAX + 1, (256, a.channels + 1))
    want = (h1.astype(object) @ w.T.astype(object)).astype(np.int64)
    hf, wf = h1.astype(np.float64), w.astype(np.float64)
    wt = np.ascontiguousarray(wf.T)
    out = np.zeros((a.rows, 256), np.int64)
    ways = {
        "int64 loops (before)": lambda: int64_product(h1, w, out),
        "adapt_cpu.head_product (float64, SIMD-shaped)": lambda: adapt_cpu.head_product(h1, w, out),
        "numba float64 reductions": lambda: float_rows(h1, w, out),
        "numba float64 rows, head transposed": lambda: float_axpy(hf, wt, out),
        "BLAS on the state's layout (float64 copy)": lambda: np.matmul(hf, wf.T),
        "BLAS, head transposed (float64 copy)": lambda: np.matmul(hf, wt),
    }
    print(f"{a.rows} rows x {a.channels + 1} inputs x 256 symbols; CPU {cpu_model()}")
    print("the product, U . [h, 1]:")
    for name, call in ways.items():
        us = timed(call, a.repeat)
        out[:] = -1
        got = call()
        result = out if got is None else np.asarray(got).astype(np.int64)
        print(f"  {name:46} {us:8.1f} us {'exact' if np.array_equal(result, want) else 'WRONG'}")
    print(f"  {'copying the state to float64 alone':46} "
          f"{timed(lambda: wf.__setitem__(slice(None), w), a.repeat):8.1f} us")
    # the gradient's sums: q (rows, 256) at |q h| < 2**40, as the definition bounds them
    q = rng.choice([-(2**24), 2**24, 0, 5], (a.rows, 256))
    want_g = (q.T.astype(object) @ h1.astype(object)).astype(np.int64)
    grad, qf = np.zeros((256, a.channels + 1), np.int64), q.astype(np.float64)
    print("the gradient's sums, q^T . [h, 1]:")
    for name, call in {
        "int64 loops (before)": lambda: int64_gradient(q, h1, grad),
        "adapt_cpu.outer_sums (float64, SIMD-shaped)":
            lambda: adapt_cpu.outer_sums(qf, hf, grad),
    }.items():
        us = timed(call, a.repeat)
        grad[:] = 0
        call()
        print(f"  {name:46} {us:8.1f} us {'exact' if np.array_equal(grad, want_g) else 'WRONG'}")
    update(rng, a.rows, a.channels, a.repeat)


def update(rng, rows: int, channels: int, repeat: int) -> None:
    """A step's whole update (gradients, then the moves) as two kernels with the gradient written
    out in between, against `adapt_cpu.observe`, which moves the head row by row as its gradient
    is summed; both from the same state, compared after three steps."""
    from igc.codec import adapt

    v, inputs = 256, channels + 1
    index, symbols = np.arange(rows), rng.integers(0, v, rows)
    f, u = rng.integers(1, 2**17, (rows, v)), rng.integers(0, 2**16, (rows, v))
    j, w = rng.integers(0, 15, (rows, v)), rng.integers(0, 4096, (rows, v))
    h1 = rng.integers(-(2**14), 2**14, (rows, inputs))
    h1[:, -1] = 1 << 10
    grad_g, grad_u = np.zeros(17, np.int64), np.zeros((v, inputs), np.int64)
    rates = np.array([[5, 21], [37, 21], [277, 2]], np.int64)
    bounds = np.array([[adapt.A_MIN, adapt.A_MAX], [-adapt.G_MAX, adapt.G_MAX],
                       [-adapt.U_MAX, adapt.U_MAX]], np.int64)

    def fresh():
        return (rng.integers(-(2**20), 2**20, v * inputs), np.zeros(1, np.int64),
                np.zeros(17, np.int64))

    def two_kernels(head, temp, calib):
        grad_g[:] = 0
        grad_u[:] = 0
        grad_a = np.array([adapt_cpu.gradients(index, symbols, f, u, j, w, h1, adapt.Q_SHIFT,
                                               grad_g, grad_u)])
        adapt_cpu.learn_all(temp, calib, head, grad_a, grad_g, grad_u.reshape(-1), rates, 32,
                            adapt.SUM_LIM, bounds)

    def fused(head, temp, calib):
        adapt_cpu.observe(index, symbols, f, u, j, w, h1, adapt.Q_SHIFT, grad_g, temp, calib,
                          head, rates, 32, adapt.SUM_LIM, bounds)

    start = fresh()
    a, b = [tuple(x.copy() for x in start) for _ in range(2)]
    for _ in range(3):
        two_kernels(*a)
        fused(*b)
    same = all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    print("a step's update (gradients and moves):")
    for name, call in (("gradients, then learn_all (before)", two_kernels),
                       ("adapt_cpu.observe (row by row)", fused)):
        state = fresh()
        us = timed(lambda call=call, state=state: call(*state), repeat)
        print(f"  {name:46} {us:8.1f} us {'same state' if same else 'STATES DIFFER'}")


if __name__ == "__main__":
    main()
