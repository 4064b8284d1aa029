"""docs/plugins.md and README.md: every Python block runs as it stands, each in a fresh interpreter
(as a reader would paste it), so the guides cannot drift from the code. The README's set-up and
test commands are the ones CI runs, and docs/results.md's tables are what their JSON says."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGE = ROOT / "docs" / "plugins.md"
README = ROOT / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
README_BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_page_has_an_example_per_hook():
    hooks = ("register_compressors", "register_models", "register_tokenizers",
             "register_coders", "register_reporters")
    for hook in hooks:
        assert any(f"def {hook}(register)" in block for block in BLOCKS), hook


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_runs(index, tmp_path):
    script = tmp_path / f"block{index}.py"
    script.write_text(BLOCKS[index])
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"block {index} of docs/plugins.md failed:\n{out.stderr}"


@pytest.mark.parametrize("index", range(len(README_BLOCKS)))
def test_readme_block_runs(index, tmp_path):
    script = tmp_path / f"readme{index}.py"
    script.write_text(README_BLOCKS[index])
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"block {index} of README.md failed:\n{out.stderr}"


def test_readme_sets_up_and_tests_as_ci_does():
    """Every install and test command of .ci/run is in the README, word for word."""
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in ci if line.startswith(("pip install", "python -m pytest"))
                or "python -m pytest" in line]
    assert any(c == "IGC_REQUIRE_EXAMPLE_PLUGIN=1 python -m pytest" for c in commands)
    readme = README.read_text()
    for command in commands:
        assert command in readme, f"the README lacks CI's `{command}`"


def test_results_tables_are_what_their_json_says():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_tables.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
