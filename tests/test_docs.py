"""docs/plugins.md: every Python block on the page runs as it stands, each in a fresh interpreter
(as a plugin author would paste it), so the guide cannot drift from the code."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).parent.parent / "docs" / "plugins.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


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
