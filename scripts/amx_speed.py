"""The cpu engine with its weight products on the AMX units against the same engine without
them (pmaddwd: VNNI or AVX2), in one process, taking turns (docs/speed.md, "AMX-int8 weight
products").

    python scripts/amx_speed.py [--models igc-rgb16-v3,igc-rgb16-w256-v2] [--batch 8,16,32]
        [--positions 768] [--rounds 3] [--json FILE]

Random tokens, one thread; per model and batch, subpixels per second of one lane stepping one
position per call (a decoder) and in blocks of 16 (an encoder), the median of the rounds. The
two engines' frequencies are compared on every call: a figure is printed only for equal ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from igc.engines import amx
from igc.engines.integer import quantize
from igc.engines.integer_cpu import CpuEngine, instruction_set
from igc.models.imagegpt import ImageGPTModel

BLOCK = 16


def run(eng: CpuEngine, seqs: np.ndarray, per: int) -> tuple[float, list[np.ndarray]]:
    """Seconds for every position of `seqs`, `per` positions per call, and the outputs."""
    batch, length = seqs.shape
    st, outs = eng.start(batch), []
    start = time.perf_counter()
    for i in range(0, length, per):
        if per == 1:
            outs.append(eng.step(st, seqs[:, i]))
        else:
            outs.append(eng.block(st, seqs[:, i : i + per]))
    return time.perf_counter() - start, outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="igc-rgb16-v3,igc-rgb16-w256-v2")
    ap.add_argument("--batch", default="8,16,32")
    ap.add_argument("--positions", type=int, default=768)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not amx.usable():
        raise SystemExit("no AMX here (CPU, numba's target, the kernel, or IGC_AMX=0)")
    import torch

    torch.set_num_threads(1)
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = []
    print("| model | batch | calls | pmaddwd | AMX | AMX / pmaddwd |")
    print("|---|---:|---|---:|---:|---:|")
    for name in args.models.split(","):
        im = quantize(ImageGPTModel(name).runtime)
        engines = {"pmaddwd": CpuEngine(im, use_amx=False), "amx": CpuEngine(im, use_amx=True)}
        length = min(args.positions, im.n_positions)
        for batch in (int(b) for b in args.batch.split(",")):
            seqs = np.random.default_rng(batch).integers(0, im.vocab, (batch, length))
            for per in (1, BLOCK):
                for eng in engines.values():  # compile outside the timing
                    run(eng, seqs[:, :per], per)
                times = {k: [] for k in engines}
                for _ in range(args.rounds):
                    outs = {}
                    for key, eng in engines.items():
                        seconds, outs[key] = run(eng, seqs, per)
                        times[key].append(seconds)
                    for a, b in zip(outs["pmaddwd"], outs["amx"], strict=True):
                        np.testing.assert_array_equal(a, b)
                rate = {k: batch * length / statistics.median(v) for k, v in times.items()}
                calls = "steps" if per == 1 else f"blocks of {per}"
                rows.append(dict(model=name, batch=batch, calls=calls, **rate))
                print(f"| {name} | {batch} | {calls} | {rate['pmaddwd']:,.0f} | "
                      f"{rate['amx']:,.0f} | {rate['amx'] / rate['pmaddwd']:.2f} |", flush=True)
    if args.json:
        from igc.benchmark.environment import environment

        pmaddwd = instruction_set(False)  # what the pmaddwd side ran on
        with open(args.json, "w") as f:
            json.dump(dict(rows=rows, positions=args.positions, rounds=args.rounds,
                           pmaddwd_kernels=pmaddwd, environment=environment(
                               load_average_before=load_before)), f, indent=1)


if __name__ == "__main__":
    main()
