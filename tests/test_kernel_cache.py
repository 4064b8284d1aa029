"""The engines' numba cache is keyed by every source the kernels compile in (kernel_cache.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from igc.engines import kernel_cache
from igc.engines.kernel_cache import ENGINE_SOURCES, PREFIX, cache_folder, source_digest

KERNEL = """
from pathlib import Path

from consts import X
from igc.engines.kernel_cache import keyed_njit

HERE = Path(__file__).resolve().parent
njit = keyed_njit([HERE / "kern.py", HERE / "consts.py"])


@njit(cache=True)
def value():
    return X


print(value())
"""


def test_engine_kernels_cache_in_the_keyed_folder():
    from igc.engines import adapt_cpu, expert_cpu, integer_cpu, scalars

    folder = str(cache_folder(ENGINE_SOURCES))
    assert Path(folder).name == PREFIX + source_digest(ENGINE_SOURCES)
    for kernel in (integer_cpu._step, adapt_cpu.observe, expert_cpu.prepare, scalars.shift_round):
        assert kernel._cache._cache_path.startswith(folder), kernel
    # what the kernels import from igc.core is part of the key
    assert any(p.parts[-2:] == ("core", "numerics.py") for p in ENGINE_SOURCES)
    assert {p.name for p in ENGINE_SOURCES} >= {"integer.py", "expert.py", "scalars.py",
                                               "simd.py", "integer_cpu.py"}


def test_digest_follows_content(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("X = 1\n")
    b.write_text("Y = 2\n")
    before = source_digest([a, b])
    a.write_text("X = 3\n")  # same size, other bytes
    assert source_digest([a, b]) != before
    a.write_text("X = 1\n")
    assert source_digest([a, b]) == before


def test_plain_njit_keeps_its_own_cache_setting():
    from numba.core import config

    before = config.CACHE_DIR

    @kernel_cache.njit
    def plain(x):
        return x + 1

    assert plain(1) == 2 and before == config.CACHE_DIR


@pytest.mark.slow
def test_an_edited_constant_recompiles(tmp_path):
    """numba stamps a cache with its kernel's own file; here only the imported constant
    changes, and the next process must see the new value, not the cached kernel's."""
    (tmp_path / "kern.py").write_text(textwrap.dedent(KERNEL))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *sys.path])

    def run() -> str:
        out = subprocess.run([sys.executable, str(tmp_path / "kern.py")], env=env,
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    (tmp_path / "consts.py").write_text("X = 1\n")
    assert run() == "1"
    first = list((tmp_path / "__pycache__").glob(PREFIX + "*"))
    assert len(first) == 1 and any(first[0].rglob("*.nbi"))
    assert run() == "1"  # served from the cache
    (tmp_path / "consts.py").write_text("X = 2\n")
    assert run() == "2"
    now = list((tmp_path / "__pycache__").glob(PREFIX + "*"))
    assert len(now) == 1 and now != first  # the stale folder is gone
