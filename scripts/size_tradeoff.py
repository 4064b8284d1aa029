"""Compression against coding speed for several ImageGPT sizes, in one run (model card table).

    python scripts/size_tradeoff.py MODEL [MODEL ...] [--images PATH] [--count N] [--threads T]

For each model: parameters, model bits per subpixel over the first N images of PATH (one-shot
estimate; the real files agree within 0.1% plus the header) and igc's encode/decode speed on the
`igc speed` default images, measured one model after another with the same settings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def run_json(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "igc", *args, "--json"], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--images", default="../shared/data/cifar10/test_first1000.npz")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print(f"| model | parameters | bpsp ({a.count} images of {a.images}) | encode subpixels/s "
          f"| decode subpixels/s |")
    print("|---|---:|---:|---:|---:|")
    for model in a.models:
        bench = run_json(["bench", "-c", "imagegpt", "--model", model, "--images", a.images,
                          "--count", str(a.count), "--estimate", "--threads", str(a.threads)])
        speed = run_json(["speed", "--backend", "igc", "--model", model,
                          "--threads", str(a.threads)])
        by = {r["phase"]: r["subpixels_per_second"] for r in speed["results"]}
        params = speed["environment"].get("parameters", "?")
        print(f"| {model} | {params:,} | {bench['summary']['imagegpt']['bits_per_subpixel']:.3f} "
              f"| {by['encode']:,.0f} | {by['decode']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
