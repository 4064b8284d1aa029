"""Where one step of the cpu engine (numerics 2) spends its time, against the memory it streams
(docs/speed.md, "Where a step's time goes").

    python scripts/step_profile.py [--model M] [--batch 16,128] [--positions 50,300,600,760]

For each batch, B random sequences are stepped from position 0; at each marked position the whole
step is timed, then its weight products (`_linear`, every layer's four and the head's) and its
attention (`_attend`, every layer) alone on the same state, each the mean of 20 calls on one
thread. "other" is the rest: embedding, norms, GELU and the head's frequencies. The attention's
bytes are what it must read at that position: every cached key and value of every layer and head
(int16). Last, the rate at which one core streams arrays of the same sizes (a SIMD sum), so the
attention's GB/s can be read against what the caches and memory deliver.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from igc.engines import integer_cpu as ic
from igc.engines.integer import quantize
from igc.models.imagegpt import ImageGPTModel


def mean_ms(f, n: int = 20) -> float:
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e3


@njit(nogil=True, cache=True)
def _stream(a: np.ndarray, rounds: int) -> int:
    t = np.int32(0)
    for _ in range(rounds):
        for i in range(a.shape[0]):
            t += a[i]
    return t


def stream_gbs(nbytes: int) -> float:
    a = np.ones(nbytes // 2, np.int16)
    rounds = max(1, (200 << 20) // nbytes)
    _stream(a, 1)
    t = time.perf_counter()
    _stream(a, rounds)
    return nbytes * rounds / (time.perf_counter() - t) / 2**30


def profile(eng: ic.CpuEngine, im, batch: int, marks: set[int]) -> list[int]:
    st = eng.start(batch)
    rng = np.random.default_rng(0)
    nl, frac, sizes = len(im.layers), np.int64(im.norm_frac), []
    for p in range(max(marks) + 1):
        ids = rng.integers(0, 256, batch)
        if p in marks:
            def step(p=p, ids=ids):
                st.position = p
                eng.step(st, ids)
            whole = mean_ms(step)
            r = st.rows  # the row buffers of a one-token step: batch rows
            lin = nl * sum(mean_ms(lambda w=w, r=r: ic._linear(r["xin"], w, r["acc"]))
                           for w in (eng.w_qkv[0], eng.w_proj[0], eng.w_fc[0], eng.w_mlp[0]))
            lin += mean_ms(lambda r=r: ic._linear(r["xin"], eng.w_head, r["acc"]))
            att = nl * mean_ms(lambda p=p, r=r: ic._attend(
                r["acc"], eng.p_qkv[0], frac, eng.v_shift[0], im.n_head, st.keys[0],
                st.key_shift[0], st.values[0], p, 1, st.u, r["qn"], r["qs"], st.qh, st.ql,
                st.scores, st.wh, st.wl, st.mix, r["xin"]))
            nbytes = nl * batch * (p + 1) * im.n_embd * 2 * 2  # keys and values, int16
            sizes.append(nbytes)
            print(f"| {batch} | {p} | {whole:.3f} | {lin:.3f} | {att:.3f} | "
                  f"{whole - lin - att:.3f} | {nbytes / 2**20:.1f} | "
                  f"{nbytes / att * 1e3 / 2**30:.1f} | {batch / whole * 1e3:,.0f} |", flush=True)
        st.position = p
        eng.step(st, ids)
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch", default="16,128")
    ap.add_argument("--positions", default="50,300,600,760")
    a = ap.parse_args()
    model = ImageGPTModel(a.model)
    im = quantize(model.runtime)
    eng = ic.CpuEngine(im)
    marks = {int(p) for p in a.positions.split(",")}
    print(f"model {model.name}; ms per step, one thread")
    print("| batch | position | step | weight products | attention | other | cache read, MiB "
          "| attention, GiB/s | subpixels/s |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    sizes = []
    for b in a.batch.split(","):
        sizes += profile(eng, im, int(b), marks)
    print("\none core streaming an int16 array (SIMD sum):")
    for nbytes in sorted({1 << 20, 1 << 22, max(sizes), *(s for s in sizes if s > 1 << 22)}):
        print(f"  {nbytes / 2**20:7.1f} MiB: {stream_gbs(nbytes):5.1f} GiB/s")


if __name__ == "__main__":
    main()
