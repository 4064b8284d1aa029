"""The pixel model's decoder step against the subpixel model's, measured on the cpu engine
(numerics 2): the model time of a window batch, the part of a decode that the pixel model
changes (docs/design.md, "One position per pixel").

    python scripts/pixel_speed.py [--pixel-model DIR] [--batch 8] [--rounds 3]

B sequences are stepped through a whole 16×16 window (768 subpixel steps) from the start
symbol, as a decoder steps a batch of windows: the subpixel model (igc-rgb16-v3, 768 body
steps) and the pixel model (256 body steps, 768 heads), alternating, one thread, after a
warm-up that compiles the kernels. The pixel model's weights do not change its time (default:
one warm-started from igc-rgb16-v3); its body steps and heads are timed apart as well.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from igc.engines.integer_cpu import CpuEngine, instruction_set
from igc.engines.pixel_cpu import PixelCpuEngine
from igc.engines.pixel_integer import quantize_pixel
from igc.models.imagegpt import ImageGPTModel
from igc.models.network import ModelConfig
from igc.training.model import load_pretrained, pixel_from_subpixel


def window(engine, batch: int, tokens: np.ndarray) -> tuple[float, list[float]]:
    """Seconds for one window batch, and the seconds of each step."""
    state, per = engine.start(batch), []
    start = time.perf_counter()
    prev = np.full(batch, 256)
    for p in range(tokens.shape[1]):
        t = time.perf_counter()
        engine.step(state, prev)
        per.append(time.perf_counter() - t)
        prev = tokens[:, p]
    return time.perf_counter() - start, per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pixel-model", default=None, help="a pixel export (default: warm start)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    subpixel = CpuEngine(ImageGPTModel("igc-rgb16-v3").integer_model)
    cfg = ModelConfig(arch="pixel")
    if a.pixel_model:
        pcfg, state, _ = load_pretrained(a.pixel_model)
        if pcfg.arch != "pixel":
            raise SystemExit(f"{a.pixel_model} is not a pixel model")
    else:
        pcfg, state = cfg, pixel_from_subpixel(load_pretrained("igc-rgb16-v3")[1], cfg)
    pixel = PixelCpuEngine(quantize_pixel(state, pcfg))
    tokens = np.random.default_rng(0).integers(0, 256, (a.batch, 768))
    for engine in (subpixel, pixel):  # compile
        window(engine, a.batch, tokens[:, :12])
    print(f"cpu engine, {instruction_set()}, batch {a.batch}, one thread")
    times = {"subpixel": [], "pixel": [], "pixel body": [], "pixel heads": []}
    for r in range(a.rounds):
        for name, engine in (("subpixel", subpixel), ("pixel", pixel)):
            total, per = window(engine, a.batch, tokens)
            times[name].append(total)
            if name == "pixel":
                times["pixel body"].append(sum(per[0::3]))
                times["pixel heads"].append(sum(per[1::3]) + sum(per[2::3]))
            print(f"round {r}: {name:8s} {total * 1e3:7.1f} ms a window batch", flush=True)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"medians: subpixel {med['subpixel'] * 1e3:.1f} ms, pixel {med['pixel'] * 1e3:.1f} ms "
          f"(body {med['pixel body'] * 1e3:.1f}, heads {med['pixel heads'] * 1e3:.1f}): "
          f"{med['subpixel'] / med['pixel']:.2f}x less model time")


if __name__ == "__main__":
    main()
