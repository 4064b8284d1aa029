"""Two versions of igc on one photograph, turn about: encode and decode seconds of each, and a check
that both write the same bytes (an exact speed-up must not change a file).

    git worktree add /tmp/base <commit>          # the code to compare with
    python scripts/code_ab.py /tmp/base [kodim23] [--rounds 3] [--threads 2] [--model M]

Each round runs the other checkout, then this one, each in a fresh process (its own numba
kernels, from their caches), so a machine whose speed drifts shows it in both. A process encodes
the photograph with the default codec (as `igc compress` does: its mode, strips and batch),
decodes the file and compares the pixels; the times exclude start-up and a small warm-up image.
Prints one line per run and the mean of each phase per version; exit code 1 if the versions
write different bytes or a decode is not exact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(image: str, threads: int, model: str | None) -> None:
    import numpy as np
    from PIL import Image
    from script_env import KODAK

    import igc.api as api
    from igc.plugins.compose import compose

    api.set_threads(threads)
    path = Path(image) if Path(image).exists() else KODAK / f"{image}.png"
    img = np.asarray(Image.open(path).convert("RGB"))
    codec = compose(model)
    codec.decode(codec.encode(img[:32, :64]).data)  # kernels loaded outside the timings
    start = time.perf_counter()
    data = codec.encode(img).data
    encode = time.perf_counter() - start
    start = time.perf_counter()
    out = codec.decode(data)
    decode = time.perf_counter() - start
    print(json.dumps({"encode": encode, "decode": decode, "bytes": len(data),
                      "sha256": hashlib.sha256(data).hexdigest(),
                      "exact": bool((out == img).all())}))


def run(code: Path | None, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", args.image,
           "--threads", str(args.threads)] + (["--model", args.model] if args.model else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=HERE)
    if out.returncode:
        sys.exit(f"code_ab: a run of {code or 'this checkout'} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base", nargs="?", type=Path, help="the other checkout's root")
    ap.add_argument("image", nargs="?", default="kodim23")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None)
    ap.add_argument("--child", metavar="IMAGE", help=argparse.SUPPRESS)  # one timed run
    a = ap.parse_args()
    if a.child:
        child(a.child, a.threads, a.model)
        return
    if a.base is None or not (a.base / "igc" / "__init__.py").exists():
        sys.exit("code_ab: give the root of another igc checkout (git worktree add DIR COMMIT)")
    versions = {"other": a.base.resolve(), "this": None}
    runs: dict[str, list[dict]] = {name: [] for name in versions}
    for r in range(a.rounds):
        for name, code in versions.items():
            got = run(code, a)
            runs[name].append(got)
            print(f"round {r + 1} {name:5s} encode {got['encode']:6.1f} s  decode "
                  f"{got['decode']:6.1f} s  {got['bytes']:,} bytes  "
                  f"{'exact' if got['exact'] else 'WRONG PIXELS'}", flush=True)
    for name, got in runs.items():
        enc = sum(g["encode"] for g in got) / len(got)
        dec = sum(g["decode"] for g in got) / len(got)
        print(f"mean {name:5s} encode {enc:6.1f} s  decode {dec:6.1f} s  total {enc + dec:6.1f} s")
    hashes = {g["sha256"] for got in runs.values() for g in got}
    exact = all(g["exact"] for got in runs.values() for g in got)
    print("same bytes in every run" if len(hashes) == 1 else "THE VERSIONS WRITE OTHER BYTES")
    sys.exit(0 if len(hashes) == 1 and exact else 1)


if __name__ == "__main__":
    main()
