"""Where a measurement ran: the one description of the machine that `igc bench` and `igc speed`
both attach to their results, so figures can be compared across runs."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

DISTRIBUTIONS = ("igc-codec", "numpy", "pillow", "imagecodecs", "constriction", "zstandard",
                 "torch", "transformers", "safetensors", "scikit-image")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(**extra: Any) -> dict[str, Any]:
    """Versions, platform, CPU, torch's thread count (when torch is loaded) and the load average
    (other work on the machine slows every compressor alike), plus the caller's `extra` fields."""
    env: dict[str, Any] = {
        "versions": versions(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "device": "cpu",
    }
    if "torch" in sys.modules:
        env["torch_threads"] = sys.modules["torch"].get_num_threads()
    if hasattr(os, "getloadavg"):
        env["load_average_1min"] = round(os.getloadavg()[0], 2)
    env.update(extra)
    return env
