"""Context mode 4's encoder settings compared image by image: each variant of the tuning (batch,
epochs, rate, L1 pull) tunes the model, and the codec's own estimate gives the tuned model's bits
at mode 4's batch plus the changes' block, beside mode 3 (the default) on the same image.

    python scripts/tune_variants.py astronaut coffee motorcycle_left [--crop 0] [--threads 1]
        --try "BATCH=32,EPOCHS=1" --try "BATCH=8,EPOCHS=0.25" [--model igc-rgb16-v3] [--json F]

Images are gallery names, Kodak names or paths (scripts/mode_compare.py's `load`). A variant sets
constants of igc/models/tuning.py (BATCH, EPOCHS, LEARNING_RATE, L1, SEED) for its own tuning
only; the decoder never runs the tuning, so every variant writes files that decode as mode 4
does. Every figure is `NeuralCodec.estimate_bits`: exactly a file's model bits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mode_compare import load
from script_env import cpu_model

KNOBS = ("BATCH", "EPOCHS", "LEARNING_RATE", "L1", "SEED")


def variant(text: str) -> dict[str, float]:
    """"BATCH=8,EPOCHS=0.25" -> {"BATCH": 8, "EPOCHS": 0.25}."""
    out = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name not in KNOBS or not value:
            raise argparse.ArgumentTypeError(f"{part!r}: give NAME=VALUE, NAME one of {KNOBS}")
        out[name] = int(value) if name in ("BATCH", "SEED") else float(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--try", dest="variants", type=variant, action="append", required=True)
    ap.add_argument("--model", default="igc-rgb16-v3")
    ap.add_argument("--crop", type=int, default=0, help="centre crop (0: whole)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    import torch

    import igc.api as api
    from igc.codec import tuned
    from igc.models import tuning
    from igc.plugins.compose import compose

    torch.set_num_threads(a.threads)
    api.set_threads(a.threads)
    three = compose(a.model, context=3)
    four = compose(a.model, context=4)
    defaults = {k: getattr(tuning, k) for k in KNOBS}
    report = {"model": a.model, "crop": a.crop, "threads": a.threads, "cpu": cpu_model(),
              "defaults": defaults, "variants": [{**defaults, **v} for v in a.variants],
              "command": "python scripts/tune_variants.py " + " ".join(sys.argv[1:]),
              "images": {}}
    for name in a.images:
        pixels = load(name, a.crop)
        row = {"shape": list(pixels.shape), "mode3_bpsp": three.estimate_bits(pixels) / pixels.size,
               "variants": []}
        for v in a.variants:
            for k, val in {**defaults, **v}.items():
                setattr(tuning, k, val)
            inner, block, seconds = tuned.tuned_codec(four, pixels)
            bits = inner.estimate_bits(pixels)
            got = {**v, "tuned_bpsp": bits / pixels.size, "block_bytes": len(block),
                   "mode4_bpsp": (bits + 8 * len(block)) / pixels.size, "tune_seconds": seconds}
            row["variants"].append(got)
            change = 100 * (got["mode4_bpsp"] / row["mode3_bpsp"] - 1)
            print(f"{name} {v}: mode 3 {row['mode3_bpsp']:.4f}, tuned {got['tuned_bpsp']:.4f}, "
                  f"mode 4 {got['mode4_bpsp']:.4f} ({change:+.2f}%), block {len(block)} B, "
                  f"tuning {seconds:.0f} s", flush=True)
        for k, val in defaults.items():
            setattr(tuning, k, val)
        report["images"][name] = row
        report["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        if a.json:
            a.json.write_text(json.dumps(report, indent=1))
    rows = list(report["images"].values())
    base = sum(r["mode3_bpsp"] for r in rows)
    for i, v in enumerate(a.variants):
        got = sum(r["variants"][i]["mode4_bpsp"] for r in rows)
        secs = sum(r["variants"][i]["tune_seconds"] for r in rows)
        print(f"all {len(rows)}, {v}: mode 4 {100 * (got / base - 1):+.2f}% against mode 3, "
              f"tuning {secs:.0f} s in all")


if __name__ == "__main__":
    main()
