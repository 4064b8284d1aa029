"""Where a decode spends its time: cProfile of one decode of a Kodak centre crop (docs/speed.md,
"The decoder").

    python scripts/decode_profile.py [kodim23] [--crop 256] [--batch 8] [--threads 1] [--top 25]
        [--model NAME] [--context 2] [--sampler cprofile|none]
    python scripts/decode_profile.py --split RAW [--top 25]

The crop is encoded, decoded once to compile, then decoded under cProfile and compared with its
pixels. With one thread every lane runs in the profiled thread, so the model's numba calls
(`_step`) and the rest (adaptation, range decoder, the loop's Python) are told apart.

cProfile's cost per Python call inflates the Python's share. `--sampler none` decodes without
it, for a sampling profiler that costs nothing per call, and `--split` then reads py-spy's raw
output and gives each line's share of the samples taken inside the timed decode (a numba
kernel's time falls on the line that calls it):

    IGC_THREADS=1 taskset -c 0 py-spy record -r 200 -f raw -o /tmp/dec.raw -- \
        python scripts/decode_profile.py --model igc-rgb16-pixel --context 3 --sampler none
    python scripts/decode_profile.py --split /tmp/dec.raw
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import Counter
from pathlib import Path

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
    ap.add_argument("--model", default=None)
    ap.add_argument("--context", type=int, default=2)
    ap.add_argument("--sampler", choices=("cprofile", "none"), default="cprofile")
    ap.add_argument("--split", type=Path, default=None, help="a py-spy raw file to summarise")
    a = ap.parse_args()
    if a.split is not None:
        split(a.split, a.top)
        return
    api.set_threads(a.threads)
    img = np.asarray(Image.open(KODAK / f"{a.image}.png").convert("RGB"))
    h, w = img.shape[:2]
    top, left = max(0, (h - a.crop) // 2), max(0, (w - a.crop) // 2)
    img = np.ascontiguousarray(img[top : top + a.crop, left : left + a.crop])
    codec = compose(a.model, context=a.context, batch=a.batch)
    data = codec.encode(img).data
    codec.decode(data)  # compile outside the profile
    prof = cProfile.Profile() if a.sampler == "cprofile" else None
    start = time.perf_counter()
    out = timed_decode(codec, data, prof)
    took = time.perf_counter() - start
    print(f"{a.image} {img.shape[1]}x{img.shape[0]}, {a.model or 'default model'}, context "
          f"{a.context}, batch {a.batch}: {len(data):,} bytes, decode {took:.1f} s, "
          f"{'exact' if (out == img).all() else 'WRONG PIXELS'}")
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(a.top)


def timed_decode(codec, data: bytes, prof: cProfile.Profile | None) -> np.ndarray:
    """The decode `--split` counts samples under (by this function's name)."""
    if prof is None:
        return codec.decode(data)
    prof.enable()
    try:
        return codec.decode(data)
    finally:
        prof.disable()


def split(raw: Path, top: int) -> None:
    """Each innermost line's share of the samples under `timed_decode` in a py-spy raw file
    (lines of `frame;frame;... count`)."""
    lines, total = Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(f.startswith("timed_decode ") for f in frames):
            continue
        total += int(count)
        lines[frames[-1]] += int(count)
    print(f"{total:,} samples in the decode")
    for frame, n in lines.most_common(top):
        print(f"{100 * n / max(total, 1):5.1f}%  {frame}")


if __name__ == "__main__":
    main()
