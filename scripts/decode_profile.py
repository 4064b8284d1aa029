"""Where a context-mode-2 decode spends its time: cProfile of one decode of a Kodak centre crop
(docs/speed.md, "The decoder").

    python scripts/decode_profile.py [kodim23] [--crop 256] [--batch 8] [--threads 1] [--top 25]

The crop is encoded, decoded once to compile, then decoded under cProfile and compared with its
pixels. With one thread every lane runs in the profiled thread, so the model's numba calls
(`_step`) and the rest (adaptation, range decoder, the loop's Python) are told apart.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
from PIL import Image
from script_env import KODAK

import igc.api as api
from igc.plugins.compose import compose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image", nargs="?", default="kodim23")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    api.set_threads(a.threads)
    img = np.asarray(Image.open(KODAK / f"{a.image}.png").convert("RGB"))
    h, w = img.shape[:2]
    top, left = max(0, (h - a.crop) // 2), max(0, (w - a.crop) // 2)
    img = np.ascontiguousarray(img[top : top + a.crop, left : left + a.crop])
    codec = compose(None, context=2, batch=a.batch)
    data = codec.encode(img).data
    codec.decode(data)  # compile outside the profile
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    out = codec.decode(data)
    prof.disable()
    took = time.perf_counter() - start
    print(f"{a.image} {img.shape[1]}x{img.shape[0]}, batch {a.batch}: {len(data):,} bytes, "
          f"decode {took:.1f} s, {'exact' if (out == img).all() else 'WRONG PIXELS'}")
    pstats.Stats(prof).sort_stats("tottime").print_stats(a.top)


if __name__ == "__main__":
    main()
