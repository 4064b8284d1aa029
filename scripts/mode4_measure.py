"""Context mode 4 measured image by image through the codec's own estimate: the shipped model in
mode 3 (the default, batch 8, from a bench JSON or estimated), mode 3 at mode 4's batch, and
mode 4 itself (the model tuned to the image, its changes' block counted), with the block's bytes,
the parameters moved and the tuning's seconds.

    python scripts/mode4_measure.py kodim01 kodim03 ... [--model igc-rgb16-v3] [--threads 1]
        [--base-json BENCH.json] [--json out.json]

Every figure is `NeuralCodec.estimate_bits`, the encoder's loop without the coder: exactly a
file's model bits (docs/design.md, "Context mode 4"). Mode 4's is the tuned model's mode-3 bits
plus 8 bits per byte of the changes' block, as `igc bench --estimate --context 4` reports it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from script_env import KODAK, bench_bpsp, cpu_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--model", default="igc-rgb16-v3")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--base-json", type=Path, default=None,
                    help="take mode 3's bits at its default batch from this `igc bench --json` "
                    "file (rows of the same model, images by file name) instead of estimating")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    paths = [Path(i) if Path(i).exists() else KODAK / f"{i}.png" for i in a.images]
    if missing := [str(p) for p in paths if not p.exists()]:
        ap.error(f"no image {missing[0]} (give a file, or a Kodak name such as kodim23)")

    import torch
    from PIL import Image

    import igc.api as api
    from igc.codec import tuned
    from igc.codec.context import TUNED_BATCH
    from igc.models import tuning
    from igc.plugins.compose import compose

    torch.set_num_threads(a.threads)
    api.set_threads(a.threads)
    known = bench_bpsp(a.base_json, a.model) if a.base_json else {}
    three = compose(a.model, context=3)
    three_small = compose(a.model, context=3, batch=TUNED_BATCH)
    four = compose(a.model, context=4)
    n_params = sum(tuning.sizes(four.model))
    report = {"model": a.model, "mode": 4, "tuned_batch": TUNED_BATCH, "step_shift":
              tuning.STEP_SHIFT, "lr": tuning.LEARNING_RATE, "l1": tuning.L1,
              "epochs": tuning.EPOCHS, "threads": a.threads, "cpu": cpu_model(),
              "command": "python scripts/mode4_measure.py " + " ".join(sys.argv[1:]),
              "images": {}}
    for path in paths:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        row = {}
        if path.name in known:
            row["mode3_bpsp"], row["mode3_from"] = known[path.name], str(a.base_json)
        else:
            row["mode3_bpsp"] = three.estimate_bits(pixels) / pixels.size
        row["mode3_small_batch_bpsp"] = three_small.estimate_bits(pixels) / pixels.size
        inner, block, seconds = tuned.tuned_codec(four, pixels)
        multiples, _, _ = tuned.unpack_changes(block, n_params)
        start = time.perf_counter()
        bits = inner.estimate_bits(pixels)
        row.update(tuned_bpsp=bits / pixels.size, block_bytes=len(block),
                   mode4_bpsp=(bits + 8 * len(block)) / pixels.size, params=n_params,
                   moved=int((multiples != 0).sum()), tune_seconds=seconds,
                   estimate_seconds=time.perf_counter() - start)
        report["images"][path.stem] = row
        report["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print(f"{path.stem}: mode 3 {row['mode3_bpsp']:.4f}, at batch {TUNED_BATCH} "
              f"{row['mode3_small_batch_bpsp']:.4f}, tuned {row['tuned_bpsp']:.4f}, mode 4 "
              f"{row['mode4_bpsp']:.4f} ({100 * (row['mode4_bpsp'] / row['mode3_bpsp'] - 1):+.2f}%"
              f"), block {len(block)} B, {row['moved']} moved, tuning {seconds:.0f} s", flush=True)
        if a.json:
            a.json.write_text(json.dumps(report, indent=1))
    rows = list(report["images"].values())
    if len(rows) > 1:
        base = sum(r["mode3_bpsp"] for r in rows)
        for key in ("mode3_small_batch_bpsp", "tuned_bpsp", "mode4_bpsp"):
            got = sum(r[key] for r in rows)
            print(f"all {len(rows)}, {key}: {got / len(rows):.4f} "
                  f"({100 * (got / base - 1):+.2f}% against mode 3)")


if __name__ == "__main__":
    main()
