"""Render the summary of an `igc bench --json` output as a Markdown table (for README/model card).

`python scripts/bench_table.py results.json` — bits per subpixel, ratio, and round-trip status per
compressor, best first, so the published figures are exactly what the run printed.
"""

import json
import sys


def main(path: str) -> None:
    with open(path) as fh:
        data = json.load(fh)
    print("| compressor | images | bits/subpixel | total ratio | mean ratio | round trip |")
    print("|---|---:|---:|---:|---:|:---:|")
    for name, s in sorted(data["summary"].items(), key=lambda kv: kv[1]["bits_per_subpixel"]):
        label = name + (" (model bits, estimate)" if s.get("estimate") else "")
        check = {True: "exact", False: "FAILED", None: "not checked"}[s["roundtrip_ok"]]
        print(f"| {label} | {s['images']} | {s['bits_per_subpixel']:.3f} | {s['total_ratio']:.3f} "
              f"| {s['mean_ratio']:.3f} | {check} |")


if __name__ == "__main__":
    main(sys.argv[1])
