"""What the measurement scripts share: where the evaluation photos are and which CPU ran them.

Imported by the scripts beside it (run as `python scripts/NAME.py`, which puts this folder first
on the path)."""

from __future__ import annotations

import gzip
import json
import platform
from pathlib import Path

HERE = Path(__file__).resolve()
# ../shared/data/kodak beside the checkout (a worktree one or two levels deeper also finds it)
KODAK = next((p / "shared" / "data" / "kodak" for p in HERE.parents[1:4]
              if (p / "shared" / "data" / "kodak").is_dir()),
             HERE.parents[2] / "shared" / "data" / "kodak")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_bpsp(path: Path, model: str) -> dict[str, float]:
    """Model bits per subpixel by image file name, from an `igc bench --json` file (gzipped
    or not), for the rows of `imagegpt:MODEL` exactly."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return {r["image"]: r["model_bits"] / (r["original_bits"] / 8)
                for r in json.load(f)["results"] if r["compressor"] == f"imagegpt:{model}"}
