"""Where a measurement ran: the one description of the machine that `igc bench` and `igc speed`
both attach to their results, so figures can be compared across runs."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
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


def command_line() -> str:
    """The command as typed, with the program's path shortened to its name (`igc bench ...`)."""
    argv = list(sys.argv) or [""]
    argv[0] = os.path.basename(argv[0]) or argv[0]
    return shlex.join(argv)


def environment(**extra: Any) -> dict[str, Any]:
    """Versions, platform, CPU, torch's thread count (when torch is loaded), the instructions
    the cpu engines this process made multiplied with (IGC_AMX=0 changes them), the load average
    (other work on the machine slows every compressor alike), the date (UTC) and the command
    line that ran, plus the caller's `extra` fields: what docs/results.md quotes beside a figure."""
    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command_line(),
        "versions": versions(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "device": "cpu",
    }
    if "torch" in sys.modules:
        env["torch_threads"] = sys.modules["torch"].get_num_threads()
    engine = sys.modules.get("igc.engines.integer_cpu")
    used = sorted(getattr(engine, "KERNELS_USED", ()))  # cpu engines made in this process
    if used:
        env["cpu_kernels"] = ", ".join(used)
    if hasattr(os, "getloadavg"):
        one, five, fifteen = os.getloadavg()
        env["load_average_1min"] = round(one, 2)
        env["load_average"] = [round(one, 2), round(five, 2), round(fifteen, 2)]
    env.update(extra)
    return env
