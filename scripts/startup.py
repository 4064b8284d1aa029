"""Where the start-up time of `igc decompress` goes, against `python -c "import torch"`, in one run.

    python scripts/startup.py [--rounds 3] [--json]

1. Whole commands, each in a fresh process, taking turns (torch import, decompress, ...) after one
   decompress that is not counted (numba's on-disk cache and the integer model's are then warm:
   "after first use"): the median wall time of each and their ratio. The target (issue 26) is a
   decompress of a 16×16 default-model file within 2× the torch import.
2. One fresh process, the same decode cut into its parts, in the order decompress meets them:
   importing igc, torch and numba, the plugin registry, finding the file's model, loading it
   (weights read, checked and fingerprinted, the torch runtime built), deriving the integer
   model, the numba engine, its first step (numba loads its cached machine code), the decode
   itself, and a second decode.

The machine's load average is printed beside the figures: on a shared machine every figure moves.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTS = r'''
import json, sys, time
marks = []
t = time.perf_counter()
def mark(what):
    global t
    now = time.perf_counter(); marks.append((what, now - t)); t = now
import igc.api as api; mark("import igc (api)")
import torch; mark("import torch")
import numba; mark("import numba")
import numpy as np
from igc.core import container
from igc.models.imagegpt import ImageGPTModel
from igc.plugins.compose import _load_model
from igc.plugins.manager import get_registry
data = open(sys.argv[1], "rb").read()
registry = get_registry(); mark("load the plugin registry")
header, _ = container.unpack(data)
spec = ImageGPTModel.spec_for(header.model_id, header.fingerprint)
mark("find the file's model by its fingerprint")
model = _load_model(registry, "imagegpt", spec)
mark("load the model: read, check and fingerprint the weights, torch runtime")
model.integer_model; mark("derive the integer model")
engine = model.engine(); mark("integer engine (import integer_cpu, numba definitions)")
engine.step(engine.start(1, 768), np.array([256], np.int64))
mark("first step (numba loads its cached machine code)")
api.decompress(data); mark("decode, everything above loaded (768 steps, checksum)")
api.decompress(data); mark("decode again")
print(json.dumps(marks))
'''


def wall(cmd: list[str], env: dict) -> float:
    began = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import numpy as np

    import igc

    env = dict(os.environ)
    igc_cmd = [sys.executable, "-m", "igc"]
    with tempfile.TemporaryDirectory() as tmp:
        image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        path = Path(tmp) / "x.igc"
        path.write_bytes(igc.compress(image))
        decompress = [*igc_cmd, "decompress", str(path), "-o", str(Path(tmp) / "x.png"),
                      "--force", "--quiet"]
        torch_cmd = [sys.executable, "-c", "import torch"]
        load_before = os.getloadavg()
        wall(decompress, env)  # first use: fills numba's and igc's caches if they are cold
        times: dict[str, list[float]] = {"import torch": [], "igc decompress": []}
        for _ in range(args.rounds):
            times["import torch"].append(wall(torch_cmd, env))
            times["igc decompress"].append(wall(decompress, env))
        out = subprocess.run([sys.executable, "-c", PARTS, str(path)], check=True, env=env,
                             capture_output=True, text=True)
        parts = json.loads(out.stdout.strip().splitlines()[-1])
        load_after = os.getloadavg()
    medians = {k: statistics.median(v) for k, v in times.items()}
    report = {"rounds": times, "medians": medians,
              "ratio": medians["igc decompress"] / medians["import torch"],
              "parts": parts, "load_average_before": load_before,
              "load_average_after": load_after, "cpu": _cpu(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": " ".join(["python", "scripts/startup.py", *sys.argv[1:]])}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for k, v in times.items():
        print(f"{k:16} median {medians[k]:.2f} s  ({', '.join(f'{x:.2f}' for x in v)})")
    print(f"ratio decompress / import torch: {report['ratio']:.2f}")
    print("one fresh process, part by part:")
    for what, seconds in parts:
        print(f"  {seconds:7.3f} s  {what}")
    print(f"load average before {load_before}, after {load_after}; {report['cpu']}")


def _cpu() -> str:
    from igc.benchmark.environment import cpu_name

    return cpu_name()


if __name__ == "__main__":
    main()
