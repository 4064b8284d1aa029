"""Context mode 1 against mode 0 on real files: what the adaptation saves, measured in one pass.

    python scripts/adapt_files.py kodim01 kodim02 ... [--crop 0] [--model igc-rgb16-v2]
        [--batch 256] [--json out.json] [--lr head=277/6,temp=5/8,calib=37/8]

Each image is encoded once in context mode 1 by igc's own codec (the file is written to memory
and decoded again with --verify). Mode 1's engine step stops at the logits, from which mode 0's
frequencies are exactly `integer.frequencies(logits)`, the table a mode-0 file codes with; so
the same pass also sums mode 0's model bits, with no second encode. Printed per image: mode 0's
model bits, mode 1's model bits and real file size, in bits per subpixel. `--lr` overrides the
mode's learning rates (numerator/shift) to tune them; files written so are not mode 1 files
(a decoder uses the constants), so tuning runs skip --verify.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from script_env import KODAK, cpu_model


def load(name: str, crop: int) -> np.ndarray:
    from PIL import Image

    path = Path(name) if Path(name).suffix else KODAK / f"{name}.png"
    im = np.asarray(Image.open(path).convert("RGB"))
    if crop > 0:
        h, w = im.shape[:2]
        top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        im = im[top : top + crop, left : left + crop]
    return np.ascontiguousarray(im)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("images", nargs="*", default=[f"kodim{i:02d}" for i in range(1, 25)])
    ap.add_argument("--model", default=None, help="model spec (default: igc's default model)")
    ap.add_argument("--crop", type=int, default=0, help="centre crop side (0: whole image)")
    ap.add_argument("--batch", type=int, default=None, help="tiles per batch (default: igc's)")
    ap.add_argument("--lr", default="", help="tuning: head=N/S,temp=N/S,calib=N/S")
    ap.add_argument("--verify", action="store_true", help="decode each file and compare")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    from igc.codec import adapt
    from igc.core import container
    from igc.engines.integer import TOTAL_BITS, frequencies
    from igc.plugins.compose import compose

    for part in filter(None, a.lr.split(",")):
        key, value = part.split("=")
        num, shift = value.split("/")
        setattr(adapt, f"LR_{key.upper()}", (int(num), int(shift)))

    class Measured(adapt.OnlineAdaptation):
        """Mode 1, also summing mode 0's model bits of the same symbols."""

        mode0_bits = 0.0

        def frequencies(self, step, hidden, logits):
            self._mode0 = frequencies(logits)
            return super().frequencies(step, hidden, logits)

        def observe(self, rows, symbols):
            picked = self._mode0[rows][np.arange(len(symbols)), symbols]
            Measured.mode0_bits += float(-np.log2(picked / float(1 << TOTAL_BITS)).sum())
            super().observe(rows, symbols)

    made = adapt.adaptation_for
    adapt.adaptation_for = lambda model, numerics, mode, *args: (
        Measured(*adapt.head_of(model, numerics)) if mode == adapt.MODE else made(
            model, numerics, mode, *args))

    codec = compose(a.model, context=1, **({"batch": a.batch} if a.batch else {}))
    rows, totals = [], {"subpixels": 0, "mode0_bits": 0.0, "mode1_bits": 0.0, "mode1_bytes": 0}
    print(f"model {codec.model.name}, crop {a.crop or 'none'}, batch {a.batch or 'default'}, "
          f"lr {a.lr or 'the mode'}; CPU {cpu_model()}; load {os.getloadavg()[0]:.2f}", flush=True)
    for name in a.images:
        image = load(name, a.crop)
        Measured.mode0_bits = 0.0
        start = time.time()
        result = codec.encode(image)
        seconds = time.time() - start
        mode0_bits = Measured.mode0_bits  # (a --verify decode runs the adaptation again)
        header = container.unpack(result.data)[0]
        assert header.context == adapt.MODE
        if a.verify:
            assert np.array_equal(codec.decode(result.data), image), name
        n = image.size
        row = {"image": name, "shape": list(image.shape[:2]), "batch": header.batch,
               "mode0_bpsp": mode0_bits / n, "mode1_bpsp": result.model_bits / n,
               "mode1_file_bpsp": 8 * len(result.data) / n, "encode_s": round(seconds, 1)}
        rows.append(row)
        totals["subpixels"] += n
        totals["mode0_bits"] += mode0_bits
        totals["mode1_bits"] += result.model_bits
        totals["mode1_bytes"] += len(result.data)
        print(f"  {name}: mode 0 {row['mode0_bpsp']:.4f}, mode 1 {row['mode1_bpsp']:.4f} "
              f"({100 * (result.model_bits / mode0_bits - 1):+.2f}%), file "
              f"{row['mode1_file_bpsp']:.4f} bpsp, {seconds:.0f} s", flush=True)
    n = totals["subpixels"]
    m0, m1 = totals["mode0_bits"] / n, totals["mode1_bits"] / n
    print(f"all {len(rows)}: mode 0 {m0:.4f}, mode 1 {m1:.4f} bpsp ({100 * (m1 / m0 - 1):+.2f}%), "
          f"mode 1 files {8 * totals['mode1_bytes'] / n:.4f} bpsp")
    if a.json:
        a.json.write_text(json.dumps({
            "command": "python scripts/adapt_files.py " + " ".join(os.sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_model(),
            "model": codec.model.name, "crop": a.crop, "lr": a.lr, "images": rows,
            "mode0_bpsp": m0, "mode1_bpsp": m1,
            "mode1_file_bpsp": 8 * totals["mode1_bytes"] / n}, indent=1))


if __name__ == "__main__":
    main()
