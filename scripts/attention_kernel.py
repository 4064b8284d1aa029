"""The cpu engine's attention for one query (`integer_cpu._query`), alone: nanoseconds per cached
position and head, with its cache hot in the core's caches and with many caches taking turns,
against the rate one core streams the same bytes (docs/speed.md, "Attention's value sums in
one sweep").

    python scripts/attention_kernel.py [--head-size 32] [--positions 100,400,767] [--caches 1,64]

A query at position p reads p + 1 keys and values (int16: 4 bytes per channel and position).
If its time per position is about the same with one cache (hot, in L1/L2) as with 64 taking
turns (6 MiB, from L3), the kernel is bound by its arithmetic, not by the bytes it reads.
One thread; random integers in the ranges numerics 2 allows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit
from step_profile import stream_gbs

from igc.engines import integer_cpu as ic
from igc.engines.integer import ACT_MAX

LENGTH = 768


@njit(nogil=True, cache=True)
def _queries(reps, keys, ks, values, q, pos, d, qh, ql, scores, wh, wl, mix, out):
    for r in range(reps):
        i = r % keys.shape[0]
        ic._query(keys[i], ks[i], values[i], q, 3, pos, d, qh, ql, scores, wh, wl, mix, out)


def ns_per_position(d: int, caches: int, pos: int, seconds: float = 0.5) -> float:
    d2, dv, blocks = ic.cache_layout(LENGTH, d)
    rng = np.random.default_rng(0)
    keys = rng.integers(-ACT_MAX, ACT_MAX + 1, (caches, blocks * d2 * 32)).astype(np.int16)
    values = rng.integers(-ACT_MAX, ACT_MAX + 1, (caches, (LENGTH + 1) // 2 * dv * 2))
    values = values.astype(np.int16)
    ks = rng.integers(-2, 8, (caches, LENGTH)).astype(np.int8)
    q = rng.integers(-ACT_MAX, ACT_MAX + 1, d).astype(np.int64)
    z = np.zeros
    args = (keys, ks, values, q, pos, d, z(2 * d2, np.int16), z(2 * d2, np.int16),
            z(blocks * 16, np.int64), z(LENGTH + 1, np.int16), z(LENGTH + 1, np.int16),
            z(dv, np.int64), z(d, np.int64))
    _queries(caches, *args)
    reps = max(caches, 1000)
    t = time.perf_counter()
    _queries(reps, *args)
    once = (time.perf_counter() - t) / reps
    reps = max(reps, int(reps * seconds / max(once * reps, 1e-9)))
    t = time.perf_counter()
    _queries(reps, *args)
    return (time.perf_counter() - t) / reps / (pos + 1) * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--head-size", type=int, default=32)
    ap.add_argument("--positions", default="100,400,767")
    ap.add_argument("--caches", default="1,64")
    a = ap.parse_args()
    d = a.head_size
    per = 4 * d  # bytes of keys and values per position
    print(f"head size {d}: {per} bytes of cache per position; one thread")
    print("| caches | position | ns per position | GiB/s read |\n|---:|---:|---:|---:|")
    for c in (int(x) for x in a.caches.split(",")):
        for p in (int(x) for x in a.positions.split(",")):
            ns = ns_per_position(d, c, p)
            print(f"| {c} | {p} | {ns:.2f} | {per / ns * 1e9 / 2**30:.1f} |", flush=True)
    mib = max(int(x) for x in a.caches.split(",")) * LENGTH * per
    print(f"\none core streaming {mib / 2**20:.1f} MiB (SIMD sum): {stream_gbs(mib):.1f} GiB/s")


if __name__ == "__main__":
    main()
