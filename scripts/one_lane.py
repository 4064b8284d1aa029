"""What stepping a group as one lane saves on one thread (igc.codec.loop.ONE_LANE).

    python scripts/one_lane.py [kodim23] [--rows 192] [--cols 384] [--rounds 2]

A file's header records its lane size, and a group of windows steps in lanes of that size so
that threads can share a step. Under numerics 2 a tile's integers do not depend on which tiles
step beside it (igc.core.numerics, `regroupable`), so a codec on one thread steps each group as
one lane: one model call per step instead of one per lane. This codes the top-left crop of a
Kodak image in context mode 3 (no strips) on one thread, the lanes the header says against one
lane, in alternating order for `--rounds` rounds, and checks that both write the same bytes and
decode the same pixels.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from script_env import KODAK, cpu_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image", nargs="?", default="kodim23")
    ap.add_argument("--rows", type=int, default=192)
    ap.add_argument("--cols", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()

    from PIL import Image

    import igc.api as api
    from igc.codec import loop

    image = np.asarray(Image.open(KODAK / f"{a.image}.png").convert("RGB"))
    image = np.ascontiguousarray(image[: a.rows, : a.cols])
    api.set_threads(1)
    print(f"{a.image} {image.shape[1]}x{image.shape[0]} (top left), context mode 3, 1 thread; "
          f"CPU {cpu_model()}; load {os.getloadavg()[0]:.2f}")
    data = api.compress(image, context=3, strip_rows=0)  # also compiles the kernels
    for _ in range(a.rounds):
        for one in (False, True):
            loop.ONE_LANE = one
            start = time.perf_counter()
            again = api.compress(image, context=3, strip_rows=0)
            encode = time.perf_counter() - start
            start = time.perf_counter()
            pixels = api.decompress(data)
            decode = time.perf_counter() - start
            assert again == data and np.array_equal(pixels, image)
            print(f"  {'one lane' if one else 'the header lanes'}: encode {encode:.2f} s, "
                  f"decode {decode:.2f} s (same bytes, same pixels)", flush=True)
    print(f"  load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
