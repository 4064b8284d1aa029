"""Scaling of `igc bench` over processes, measured side by side in one run.

    python scripts/scaling.py IMAGES.npz --count 200 [--model M] [--runs 1x1,1x2,2x1]

Each run is `igc bench -c imagegpt --json` on the same images (real files, every one decoded and
compared), one after the other: `PxT` is P processes (`--workers P`) of T torch threads each.
Printed per run: wall seconds, the CPU seconds the run's processes used (from
`resource.getrusage` of the children), their ratio (the cores the run actually had on average),
images per minute, the load average before and after, and the speed-up against the first run.
The bits are checked equal across runs (sharding must not change a file).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs", default="1x1,2x1,1x2")
    args = parser.parse_args()
    rows = []
    sizes = None
    for run in args.runs.split(","):
        procs, threads = (int(x) for x in run.split("x"))
        command = [sys.executable, "-m", "igc", "bench", "-c", "imagegpt", "-i", args.images,
                   "-n", str(args.count), "--threads", str(threads), "--workers", str(procs),
                   "--json", "--quiet"]
        if args.model:
            command += ["--model", args.model]
        load_before = os.getloadavg()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        data = json.loads(out.stdout)
        bits = [r["compressed_bits"] for r in data["results"]]
        assert all(r["roundtrip_ok"] for r in data["results"]), "a round trip failed"
        if sizes is None:
            sizes = bits
        assert bits == sizes, "sharding changed a file's size"
        summary = data["summary"]["imagegpt"]
        rows.append((run, wall, cpu, load_before, os.getloadavg(),
                     summary["bits_per_subpixel"]))
        print(f"{run}: {wall:.1f} s wall, {cpu:.1f} s CPU ({cpu / wall:.2f} cores), "
              f"{60 * args.count / wall:.1f} images/min, speed-up {rows[0][1] / wall:.2f}, "
              f"load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}, "
              f"{summary['bits_per_subpixel']:.4f} bpsp", flush=True)


if __name__ == "__main__":
    main()
