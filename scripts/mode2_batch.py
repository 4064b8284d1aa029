"""A whole photograph in context mode 2 (or 3) at several batches (windows stepped together):
file bytes and encode/decode seconds, each decode compared with the pixels (docs/speed.md).

    python scripts/mode2_batch.py [kodim23] [--batches 16,64] [--threads 1] [--model M]
                                  [--crop N] [--context 2|3] [--rounds 1]

`--crop N` codes the central N x N pixels instead of the whole photograph; `--model` is any model
spec (`igc-rgb16-w256`), the default model otherwise; `--context 3` codes in mode 3 (with the
codec's default strips, as files are written). `--rounds` repeats the batches in turn, so
that a machine whose speed drifts shows it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image
from script_env import KODAK

import igc.api as api
from igc.benchmark.sources import center_crop
from igc.plugins.compose import compose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image", nargs="?", default="kodim23")
    ap.add_argument("--batches", default="16,64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default=None)
    ap.add_argument("--crop", type=int, default=0)
    ap.add_argument("--context", type=int, choices=(2, 3), default=2)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    api.set_threads(a.threads)
    img = np.asarray(Image.open(KODAK / f"{a.image}.png").convert("RGB"))
    if a.crop:
        img = np.ascontiguousarray(center_crop(img, a.crop))
    batches = [int(x) for x in a.batches.split(",")] * a.rounds
    for b in batches:
        codec = compose(a.model, context=a.context, batch=b)
        start = time.perf_counter()
        data = codec.encode(img).data
        enc = time.perf_counter() - start
        start = time.perf_counter()
        same = bool((codec.decode(data) == img).all())
        dec = time.perf_counter() - start
        print(f"batch {b}: {len(data):,} bytes, encode {enc:.1f} s, decode {dec:.1f} s, "
              f"{'exact' if same else 'WRONG PIXELS'}", flush=True)


if __name__ == "__main__":
    main()
