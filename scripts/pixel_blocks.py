"""An encoder's steps in blocks against one at a time, for a pixel model (docs/design.md, "One
position per pixel"): the same image encoded both ways in one run, the bytes compared.

    python scripts/pixel_blocks.py [--model igc-rgb16-pixel] [--image kodim23]
        [--rows 256] [--cols 768] [--context 3] [--rounds 2] [--positions 16,48]

The codec computes an encoder's positions in blocks where the model says it can
(`block_steps`, igc.codec.loop.Stepper); here that answer is switched off for the "steps" rows.
Each round times both, one after the other (this machine's speed drifts). Run it with
IGC_THREADS=1 and `taskset -c 0` for one core's figures. Measured (2026-12-07, Intel Xeon with
AMX, the run's defaults, experiments/pixel-w128, one core): steps 36.0 s, blocks 21.6 s (1.67x),
the same 196,439 bytes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from script_env import KODAK, cpu_model

from igc.models.pixel import PixelModel
from igc.plugins.compose import compose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="igc-rgb16-pixel")
    ap.add_argument("--image", default="kodim23")
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--cols", type=int, default=768)
    ap.add_argument("--context", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--positions", default="48", help="blocks of these many steps, each tried")
    args = ap.parse_args()
    path = Path(args.image) if Path(args.image).suffix else KODAK / f"{args.image}.png"
    image = np.asarray(Image.open(path).convert("RGB"))
    image = np.ascontiguousarray(image[: args.rows, : args.cols])
    print(f"{path.name} {args.rows}x{args.cols} of it, context mode {args.context}; CPU {cpu_model()}")
    blocks, positions = PixelModel.block_steps, PixelModel.block_positions
    compose(args.model, context=args.context).encode(image[:16, :16])  # compile the kernels
    tries = [("steps", lambda self, numerics: False, positions)] + [
        (f"blocks of {n}", blocks, int(n)) for n in args.positions.split(",")]
    sizes: dict[str, bytes] = {}
    for r in range(args.rounds):
        for name, call, n in tries:
            PixelModel.block_steps, PixelModel.block_positions = call, n
            codec = compose(args.model, context=args.context)
            t = time.perf_counter()
            data = codec.encode(image).data
            seconds = time.perf_counter() - t
            sizes.setdefault(name, data)
            print(f"round {r}: {name:12} {len(data):,} bytes, encode {seconds:.2f} s "
                  f"({image.size / seconds:,.0f} subpixels/s)", flush=True)
    PixelModel.block_steps, PixelModel.block_positions = blocks, positions
    print("the same bytes" if len(set(sizes.values())) == 1 else "THE BYTES DIFFER")


if __name__ == "__main__":
    main()
