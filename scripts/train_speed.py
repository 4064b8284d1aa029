"""Training throughput of both shipped shapes (and of `--arch pixel` with the default's body): the step as it was (eager, bf16 autocast where the
CPU has native bf16) against the step `igc train` now takes by default on a long CPU run
(compiled with torch.compile), side by side in one process (docs/training.md, "Speed on a CPU").

    python scripts/train_speed.py [--threads 1] [--steps 4] [--rounds 3] [--batch 16]
                                  [--shapes default,w256] [--precision auto] [--device auto]

For each shape both trainers start from the same seed and alternate `rounds` times (this VM's
speed drifts and other processes share it), `steps` optimizer steps each after a warm-up that
includes compiling. Tokens are predicted subpixels. Two rates are printed: per second of wall
clock, and per second of this process's CPU time, which other processes on a shared machine
disturb far less (with one thread it is the time the step computed; with more it adds up the
threads' time, waiting included). The batches are random tiles: the step's cost does not depend
on the pixels, and no data set has to be loaded.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from igc.training.data import TileSource
from igc.training.model import ModelConfig
from igc.training.trainer import Trainer, TrainSettings, hardware

SHAPES = {
    "default": ModelConfig(width=128, layers=4, heads=4, tile=16),
    "w256": ModelConfig(width=256, layers=8, heads=8, tile=16),
    "pixel": ModelConfig(width=128, layers=4, heads=4, tile=16, arch="pixel"),  # --arch pixel
}


def timed(trainer: Trainer, steps: int) -> tuple[float, float]:
    """(tokens per wall second, tokens per CPU second) over `steps` steps."""
    tokens0 = trainer.tokens
    w0, c0 = time.perf_counter(), time.process_time()
    last = None
    for _ in range(steps):
        last = trainer.train_step()
    last.item()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    n = trainer.tokens - tokens0
    return n / wall, n / cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--shapes", default="default,w256", help="comma-separated: default, w256, pixel")
    ap.add_argument("--precision", default="auto", help="auto, bf16 or fp32 (as igc train)")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
    val = images[:1, :16, :16]
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in a.shapes.split(","):
            cfg = SHAPES[shape]
            trainers = {}
            for name, compiled in (("before (eager)", False), ("now (compiled)", True)):
                settings = TrainSettings(
                    model=cfg, batch=a.batch, threads=a.threads, device=a.device,
                    precision=a.precision, steps=10**6, seed=0, compile=compiled,
                    out=os.path.join(tmp, f"{shape}-{compiled}"),
                )
                tr = Trainer(settings, source=TileSource(tile=16, stacks=[images]),
                             val_tiles=val, quiet=True)
                t0 = time.perf_counter()
                for _ in range(2):
                    tr.train_step().item()
                trainers[name] = tr
                print(f"{shape}: {name}: first two steps {time.perf_counter() - t0:.1f} s "
                      f"(compiling included)", flush=True)
            tr = trainers["now (compiled)"]
            print(f"{shape}: {cfg}, batch {a.batch}, {hardware(tr.device, a.threads)}, "
                  f"{tr.dtype or torch.float32}")
            rows = {name: [] for name in trainers}
            for r in range(a.rounds):
                for name, tr in trainers.items():
                    wall, cpu = timed(tr, a.steps)
                    rows[name].append((wall, cpu))
                    print(f"  round {r}: {name:15} {wall:9,.0f} tokens/s wall  "
                          f"{cpu:9,.0f} tokens/s CPU", flush=True)
            results[shape] = rows
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")
    print(f"\n{'shape':8} {'before wall':>12} {'now wall':>10} {'ratio':>6}   "
          f"{'before CPU':>11} {'now CPU':>9} {'ratio':>6}   (medians of {a.rounds} rounds)")
    for shape, rows in results.items():
        (bw, bc), (nw, nc) = (np.median(np.array(v), axis=0) for v in rows.values())
        print(f"{shape:8} {bw:12,.0f} {nw:10,.0f} {nw / bw:6.2f}   {bc:11,.0f} {nc:9,.0f} "
              f"{nc / bc:6.2f}")


if __name__ == "__main__":
    main()
