"""Context mode 2 against mode 1, and what each part of it gives (docs/design.md, "Context mode 2").

    python scripts/overlap_measure.py kodim23 kodim05 [--crop 128] [--model M] [--threads 1]
                                      [--min-rows 1,8,32,64]

For each image (Kodak names, or paths; `--crop N` takes the central N×N, 0 the whole image) the
encoder's own loop is stepped under numerics 2 with no coder (the model bits a file would
spend), one arm after the other:

* `mode 1`: tiles coded alone, adapted (batches of 32);
* `windows, no adaptation`: mode 2's overlapping windows and anti-diagonals, the model alone;
* `mode 2 (min rows R)`: the windows with the adaptation dividing each step's sums by at least R
  rows, for every R of `--min-rows` (the mode's own is igc.codec.adapt.MIN_ROWS_OVERLAP);
* and, for a reference, the model alone in one parallel float32 pass (what `--estimate` does in
  mode 0) over the tiles and over the windows.

Printed: bits per subpixel per arm, summed over the images, the change against mode 1, and the
wall time of each arm.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from script_env import KODAK, cpu_model

from igc.codec import adapt, context, loop
from igc.plugins.compose import model_compressor


def load(name: str, crop: int) -> np.ndarray:
    path = Path(name) if Path(name).exists() else KODAK / f"{name}.png"
    image = np.asarray(Image.open(path).convert("RGB"))
    if crop:
        h, w = image.shape[:2]
        top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        image = image[top : top + crop, left : left + crop]
    return np.ascontiguousarray(image)


def stepped_bits(codec, image: np.ndarray, mode: int, adaptation) -> float:
    tok = context.tiling(codec.tokenizer, mode).encode(image)
    action = loop.Measuring(codec.coder)
    job = loop.Job(tok.tokens, tok.coded, action, groups=tok.groups)
    batch = context.default_batch(mode, 256)
    lane = context.OVERLAP_LANE if mode == context.OVERLAP else 16
    loop.run(codec.model, 2, codec.tokenizer.start_token, context.plan(job, batch, lane),
             geometry=codec.geometry(tok.tokens.shape[1]), adaptation=adaptation)
    return action.bits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-rows", default=str(adapt.MIN_ROWS_OVERLAP))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    codec = model_compressor(a.model, context=0).codec
    shape = adapt.head_of(codec.model, 2)

    def adapted(min_rows: int):
        return lambda: adapt.OnlineAdaptation(*shape, min_rows=min_rows)

    arms = {"mode 1": (1, adapted(1)), "windows, no adaptation": (2, lambda: None)}
    for rows in (int(r) for r in a.min_rows.split(",")):
        arms[f"mode 2 (min rows {rows})"] = (2, adapted(rows))
    floats = {"tiles, one float pass": 0, "windows, one float pass": 2}
    bits = dict.fromkeys([*arms, *floats], 0.0)
    seconds = dict.fromkeys(bits, 0.0)
    subpixels = 0
    for name in a.images:
        image = load(name, a.crop)
        subpixels += image.size
        for arm, (mode, make) in arms.items():
            t = time.perf_counter()
            got = stepped_bits(codec, image, mode, make())
            seconds[arm] += time.perf_counter() - t
            bits[arm] += got
            print(f"{name} {image.shape[1]}x{image.shape[0]} {arm}: {got / image.size:.4f} bpsp",
                  flush=True)
        for arm, mode in floats.items():
            t = time.perf_counter()
            bits[arm] += codec.one_shot_bits(context.tiling(codec.tokenizer, mode).encode(image))
            seconds[arm] += time.perf_counter() - t
    print(f"\nmodel {codec.model.name}; {len(a.images)} image(s), crop {a.crop or 'none'}; CPU "
          f"{cpu_model()}, {a.threads} thread(s)")
    print("| arm | bits per subpixel | against mode 1 | seconds |\n|---|---:|---:|---:|")
    base = bits["mode 1"] / subpixels
    for arm in bits:
        bpsp = bits[arm] / subpixels
        print(f"| {arm} | {bpsp:.4f} | {100 * (bpsp / base - 1):+.2f}% | {seconds[arm]:.0f} |")


if __name__ == "__main__":
    main()
