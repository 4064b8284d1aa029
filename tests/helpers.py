"""Helpers shared by the tests: running the CLI, reading its one-line errors, forging headers.

Test modules import these (`from helpers import invoke, error_line`) instead of from each other.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from typer.testing import CliRunner

from igc.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def invoke(*args, env=None, input=None):
    """Run `igc ARGS` in-process; every argument is passed as a string."""
    return runner.invoke(app, [str(a) for a in args], env=env, input=input)


def error_line(result) -> str:
    """The single `igc: error:` line of a failed command (asserting that is all it printed)."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("igc: error: "), result.output
    assert "Traceback" not in result.output and "unexpected" not in lines[0], result.output
    return lines[0]


def error_text(stderr: str) -> str:
    """The single `igc: error:` line of a subprocess's standard error."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("igc: error: "), stderr
    assert "Traceback" not in stderr and "unexpected" not in lines[0], stderr
    return lines[0]


@cache
def fuzz_script():
    """scripts/fuzz_decoder.py as a module (the long fuzz run's driver and its mutations)."""
    path = ROOT / "scripts" / "fuzz_decoder.py"
    spec = importlib.util.spec_from_file_location("fuzz_decoder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recompute_header_crc(data: bytes) -> bytes:
    """`data` with its header CRC recomputed where the header parses that far: a forged header
    then gets past the CRC and reaches the field checks."""
    return fuzz_script().recompute_header_crc(data)
