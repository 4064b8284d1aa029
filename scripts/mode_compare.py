"""Two context modes side by side on the same images: real files, exact decodes, times.

    python scripts/mode_compare.py IMAGE... [--modes 2 3] [--crop 256] [--model M]
                                   [--repeat 1] [--threads 2] [--no-decode]

Each image (a gallery name such as retina, a Kodak name such as kodim23, or a path) is centre
cropped (`--crop 0`: whole) and encoded in each mode; each file is decoded and checked against
the pixels. With `--repeat N` the decodes run N times each, the modes alternating (ABBA...), and
the median is printed: on a shared machine the times vary by 10-15% from run to run, so compare
only figures taken in one run, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def load(name: str, crop: int) -> np.ndarray:
    from PIL import Image
    from script_env import KODAK

    from igc.benchmark.sources import center_crop, gallery

    refs = {r.name.rsplit(".", 1)[0]: r.path for r in gallery()}
    path = refs.get(name) or (KODAK / f"{name}.png" if name.startswith("kodim") else name)
    if not Path(path).is_file():
        raise SystemExit(f"{name}: not a gallery photo ({', '.join(sorted(refs))}), a Kodak "
                         f"name found in {KODAK}, or an image file")
    img = np.asarray(Image.open(path).convert("RGB"))
    return np.ascontiguousarray(center_crop(img, crop) if crop else img)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--modes", type=int, nargs=2, default=[2, 3])
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-decode", action="store_true")
    a = ap.parse_args()

    import igc.api as api
    from igc.plugins.compose import compose

    api.set_threads(a.threads)
    first, second = a.modes
    warm = load(a.images[0], 32)  # model loading and compilation out of the first timing
    for mode in a.modes:
        compose(a.model).decode(compose(a.model, context=mode).encode(warm).data)
    totals = {m: 0 for m in a.modes}
    times = {m: {"encode": [], "decode": []} for m in a.modes}
    subpixels = 0
    for name in a.images:
        img = load(name, a.crop)
        files = {}
        for mode in a.modes:
            start = time.perf_counter()
            files[mode] = compose(a.model, context=mode).encode(img).data
            times[mode]["encode"].append(time.perf_counter() - start)
        decoded = {m: [] for m in a.modes}
        for rep in range(0 if a.no_decode else a.repeat):
            for mode in (a.modes if rep % 2 == 0 else a.modes[::-1]):
                codec = compose(a.model)
                start = time.perf_counter()
                out = codec.decode(files[mode])
                decoded[mode].append(time.perf_counter() - start)
                if not np.array_equal(out, img):
                    raise SystemExit(f"{name}: mode {mode}'s file did not decode to the pixels")
        for mode in a.modes:
            totals[mode] += len(files[mode]) * 8
            if decoded[mode]:
                times[mode]["decode"].append(statistics.median(decoded[mode]))
        subpixels += img.size
        bits = {m: len(files[m]) * 8 / img.size for m in a.modes}
        print(f"{name} ({img.shape[1]}×{img.shape[0]}): " + ", ".join(
            f"mode {m} {bits[m]:.4f} bits per subpixel, encode {times[m]['encode'][-1]:.1f} s"
            + (f", decode {times[m]['decode'][-1]:.1f} s" if decoded[m] else "")
            for m in a.modes) + f" ({bits[second] / bits[first] - 1:+.2%})", flush=True)
    print(f"all {len(a.images)}: " + ", ".join(
        f"mode {m} {totals[m] / subpixels:.4f}" for m in a.modes)
        + f" ({totals[second] / totals[first] - 1:+.2%}); time, mode {second} over mode {first}: "
        + ", ".join(f"{what} {sum(times[second][what]) / sum(times[first][what]):.3f}×"
                    for what in ("encode", "decode") if times[first][what]))


if __name__ == "__main__":
    main()
