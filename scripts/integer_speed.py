"""Speed of one step of numerics 2 (reference and CPU engine) against numerics 1, on one thread.

    python scripts/integer_speed.py [--model M] [--batch 16] [--steps N] [--rounds 3]

Each engine steps `batch` random sequences from position 0 for `steps` steps (default: the
model's context, one whole tile; the cost of a step grows with the position, so compare equal
`steps`); the reference, which is slow, steps fewer (`--ref-steps`) and its figure is per step
over those early, cheaper positions. Engines alternate for `rounds` rounds
(this VM's speed drifts) and the best round is printed, plus a check that the CPU engine's
frequencies equal the reference's over the reference's steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from igc.engines.integer import ReferenceEngine, quantize
from igc.engines.integer_cpu import CpuEngine
from igc.models.imagegpt import ImageGPTModel


def run(start, step, seqs: np.ndarray, steps: int) -> tuple[float, list]:
    state = start()
    out = []
    t0 = time.perf_counter()
    for t in range(steps):
        out.append(step(state, seqs[:, t]))
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--ref-steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = ImageGPTModel(a.model)
    rt = model.runtime
    im = quantize(rt)
    ref, cpu = ReferenceEngine(im), CpuEngine(im)
    b, steps = a.batch, min(a.steps or rt.n_positions, rt.n_positions)
    seqs = np.random.default_rng(0).integers(0, rt.vocab_size - 1, (b, steps)).astype(np.int64)
    seqs[:, 0] = rt.vocab_size - 1  # the start token
    n_ref = min(a.ref_steps, steps)
    _, want = run(lambda: ref.start(b), ref.step, seqs, n_ref)
    _, got = run(lambda: cpu.start(b), cpu.step, seqs, n_ref)  # also compiles / loads the cache
    same = all(np.array_equal(x, y) for x, y in zip(want, got, strict=True))
    run(lambda: rt.start(b), rt.step_probs, seqs, 2)  # warm up numba
    engines = {
        f"reference (numerics 2, {n_ref} steps)": (lambda: ref.start(b), ref.step, n_ref),
        "cpu (numerics 2)": (lambda: cpu.start(b), cpu.step, steps),
        "numerics 1 (fused float32)": (lambda: rt.start(b), rt.step_probs, steps),
    }
    best = {k: float("inf") for k in engines}
    for _ in range(a.rounds):
        for name, (start, step, n) in engines.items():
            best[name] = min(best[name], run(start, step, seqs, n)[0] / n)
    print(f"model {model.name}, batch {b}, steps 0..{steps - 1}, torch threads "
          f"{torch.get_num_threads()}, best of {a.rounds}; cpu engine == reference over "
          f"{n_ref} steps: {same}")
    print("| engine | ms/step | steps/s | subpixels/s |\n|---|---:|---:|---:|")
    for name, sec in best.items():
        print(f"| {name} | {sec * 1e3:.3f} | {1 / sec:,.1f} | {b / sec:,.0f} |")


if __name__ == "__main__":
    main()
