"""The example third-party package in examples/igc-qoi, installed with pip (CI does this)."""

import json
import os
from importlib import metadata

import pytest
from typer.testing import CliRunner

from igc.cli.app import app


def _installed() -> bool:
    try:
        metadata.distribution("igc-qoi")
    except metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _installed() and not os.environ.get("IGC_REQUIRE_EXAMPLE_PLUGIN"),
    reason="examples/igc-qoi is not installed (pip install ./examples/igc-qoi)",
)


def test_entry_point_plugin_is_listed():
    assert _installed(), "CI must install examples/igc-qoi"
    out = CliRunner().invoke(app, ["plugins", "--json"])
    assert out.exit_code == 0, out.output
    plugins = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    assert plugins["igc-qoi"]["registers"] == {"compressor": ["qoi"]}
    assert plugins["igc-qoi"]["builtin"] is False and plugins["igc-qoi"]["version"] == "0.1.0"


def test_entry_point_plugin_runs_in_bench(photo_dir):
    out = CliRunner().invoke(app, ["bench", "-c", "qoi,png", "--images", str(photo_dir), "--json"])
    assert out.exit_code == 0, out.output
    rows = [r for r in json.loads(out.stdout)["results"] if r["compressor"] == "qoi"]
    assert len(rows) == 4 and all(r["roundtrip_ok"] for r in rows)
