"""The cpu engine's encoder blocks against one step per call: subpixels per second of one lane
(docs/speed.md, "The encoder computes positions in blocks").

    python scripts/block_speed.py [--model igc-rgb16-v2] [--batch 32] [--positions 768]
        [--blocks 8,16,32]

Random tokens, one thread; every block size runs the same sequences from a fresh state.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from igc.engines.integer import quantize
from igc.engines.integer_cpu import CpuEngine
from igc.models.imagegpt import ImageGPTModel


def rate(eng: CpuEngine, seqs: np.ndarray, per: int) -> float:
    """Positions x sequences per second, `per` positions per call (1: `step`)."""
    batch, length = seqs.shape
    eng.block(eng.start(batch), seqs[:, :per])  # compile outside the timing
    st = eng.start(batch)
    start = time.perf_counter()
    for i in range(0, length, per):
        if per == 1:
            eng.step(st, seqs[:, i])
        else:
            eng.block(st, seqs[:, i : i + per])
    return batch * length / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--positions", type=int, default=768)
    ap.add_argument("--blocks", default="8,16,32")
    a = ap.parse_args()
    model = ImageGPTModel(a.model)
    eng = CpuEngine(quantize(model.runtime))
    seqs = np.random.default_rng(0).integers(0, 256, (a.batch, a.positions))
    one = rate(eng, seqs, 1)
    print(f"{model.name}, batch {a.batch}, {a.positions} positions: one step per call "
          f"{one:,.0f} subpixels/s")
    for per in (int(b) for b in a.blocks.split(",")):
        r = rate(eng, seqs, per)
        print(f"  blocks of {per}: {r:,.0f} subpixels/s ({r / one:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
