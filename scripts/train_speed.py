"""Training throughput: the step as it was (Python tile loop, per-group AdamW, the loss read
every step) against the step as it is (compiled tile cutting, fused AdamW, the loss read only
when logged), side by side on the real training data (docs/training.md, "Speed").

    python scripts/train_speed.py [--batch 16] [--threads 2] [--steps 20] [--rounds 2]
                                  [--device auto] [--precision auto] [--compile]

Both variants run in one process on the same model and data, alternating `rounds` times, because
this VM's speed drifts. Sampler figures are microseconds per batch; training figures are tokens
per second over `steps` optimizer steps after two warm-up steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from igc.training.data import Sampler, TileSource, default_train_paths, load_training
from igc.training.trainer import Trainer, TrainSettings, make_optimizer


class LoopSampler:
    """The sampler before it was vectorised: one Python iteration per tile (the baseline)."""

    def __init__(self, src: TileSource, rng: np.random.Generator, small_fraction: float = 0.25):
        self.src, self.rng, self.tile = src, rng, src.tile
        self.small_fraction = small_fraction if src.stacks else 0.0
        t = self.tile
        weights = np.array([(p.shape[0] - t + 1) * (p.shape[1] - t + 1) for p in src.photos], float)
        self.photo_p = weights / weights.sum()

    def batch(self, n: int) -> np.ndarray:
        t, rng = self.tile, self.rng
        out = np.empty((n, t, t, 3), np.uint8)
        n_small = round(n * self.small_fraction)
        if n_small:
            sizes = np.array([len(s) for s in self.src.stacks])
            which = rng.choice(len(sizes), n_small, p=sizes / sizes.sum())
            for k, si in enumerate(which):
                stack = self.src.stacks[si]
                img = stack[rng.integers(len(stack))]
                y = rng.integers(img.shape[0] // t) * t
                x = rng.integers(img.shape[1] // t) * t
                out[k] = img[y : y + t, x : x + t]
        idx = rng.choice(len(self.src.photos), n - n_small, p=self.photo_p)
        for k, pi in enumerate(idx, start=n_small):
            p = self.src.photos[pi]
            y = rng.integers(p.shape[0] - t + 1)
            x = rng.integers(p.shape[1] - t + 1)
            out[k] = p[y : y + t, x : x + t]
        flip = rng.random(n) < 0.5
        out[flip] = out[flip, :, ::-1]
        return out[rng.permutation(n)]


def sampler_us(sampler, batch: int, repeats: int = 300) -> float:
    sampler.batch(batch)  # compile / warm caches
    t0 = time.perf_counter()
    for _ in range(repeats):
        sampler.batch(batch)
    return (time.perf_counter() - t0) / repeats * 1e6


def tokens_per_s(trainer: Trainer, steps: int, read_every_step: bool) -> float:
    for _ in range(2):
        trainer.train_step().item()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t0, tokens0 = time.perf_counter(), trainer.tokens
    last = None
    for _ in range(steps):
        last = trainer.train_step()
        if read_every_step:
            last.item()
    last.item()  # waits for the queued steps
    return (trainer.tokens - tokens0) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", help="auto, bf16 or fp32 (as igc train)")
    ap.add_argument("--compile", action="store_true",
                    help="also time the step through torch.compile")
    a = ap.parse_args()

    t0 = time.perf_counter()
    source = load_training(default_train_paths(), 16)
    print(f"training data: {source.description} (loaded in {time.perf_counter() - t0:.0f} s)")
    loop = LoopSampler(source, np.random.default_rng(0))
    fast = Sampler(source, np.random.default_rng(0))  # packs the photos; views replace them
    for batch in sorted({16, 128, a.batch}):
        for _ in range(a.rounds):
            print(f"sampler, batch {batch:>4}: loop {sampler_us(loop, batch):8.0f} us   "
                  f"compiled {sampler_us(fast, batch):8.0f} us")

    settings = TrainSettings(batch=a.batch, threads=a.threads, device=a.device, steps=10**6,
                             out="/tmp/igc-train-speed", precision=a.precision)
    val = np.zeros((1, 16, 16, 3), np.uint8)
    trainer = Trainer(settings, source=source, val_tiles=val, quiet=True)
    fused_opt = trainer.opt
    plain_opt = make_optimizer(trainer.model, settings.lr, settings.weight_decay, fused=False)
    eager = trainer.model
    variants = {
        "before (loop sampler, AdamW per group, loss read each step)":
            (LoopSampler(source, trainer.rng), plain_opt, True, eager),
        "now    (compiled sampler, fused AdamW, loss read when logged)":
            (trainer.sampler, fused_opt, False, eager),
    }
    if a.compile:
        variants["now + torch.compile (igc train --compile)"] = (
            trainer.sampler, fused_opt, False, torch.compile(eager))
    print(f"training: {trainer.device} ({settings.threads} thread(s)), batch {a.batch} tiles, "
          f"{trainer.dtype or torch.float32}")
    for _ in range(a.rounds):
        for name, (sampler, opt, read, forward) in variants.items():
            trainer.sampler, trainer.opt, trainer.train_forward = sampler, opt, forward
            print(f"  {name}: {tokens_per_s(trainer, a.steps, read):10,.0f} tokens/s")


if __name__ == "__main__":
    main()
