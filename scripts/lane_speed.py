"""Decode speed of one image with one lane or two, on one thread or two (docs/speed.md, Lanes).

    python scripts/lane_speed.py [--model M] [--size 64] [--rounds 2]

The image is a smooth synthetic 64×64 gradient (speed does not depend on content). Each setting is
timed `rounds` times, alternating, because this VM's memory bandwidth drifts.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from igc.codec.neural import NeuralCodec
from igc.coders.range import RangeCoder
from igc.models.imagegpt import ImageGPTModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    model = ImageGPTModel(a.model)
    rng = np.random.default_rng(0)
    image = np.cumsum(rng.integers(0, 8, (a.size, a.size, 3)), axis=1).astype(np.uint8)
    tiles = len(NeuralCodec(model, RangeCoder()).tokenizer.encode(image).tokens)
    print("| lane (tiles) | threads | decode subpixels/s |\n|---:|---:|---:|")
    for lane in (tiles, -(-tiles // 2)):
        codec = NeuralCodec(model, RangeCoder(), lane=lane)
        data = codec.encode(image).data
        for threads in (1, 2):
            speeds = []
            for _ in range(a.rounds):
                torch.set_num_threads(threads)
                start = time.perf_counter()
                if not np.array_equal(codec.decode(data), image):
                    raise SystemExit(f"lane {lane}, {threads} threads: decoded pixels differ")
                speeds.append(image.size / (time.perf_counter() - start))
            print(f"| {lane} | {threads} | {' / '.join(f'{s:,.0f}' for s in speeds)} |")


if __name__ == "__main__":
    main()
