"""What the measurement scripts share: where the evaluation photos are and which CPU ran them.

Imported by the scripts beside it (run as `python scripts/NAME.py`, which puts this folder first
on the path)."""

from __future__ import annotations

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
