"""numba's on-disk cache for the engines' kernels, keyed by every source they compile in.

numba stamps a cached kernel with the hash of its own file only. The engines' kernels also compile
in constants and inlined helpers from other modules (integer.py's and expert.py's constants,
scalars.py's rounding, simd.py's intrinsics), so an edit there alone would leave kernels built
from the old values in the cache: integers that differ from the reference engine's, and files
that other builds cannot decode. `keyed_njit` points numba's cache at a folder named by the hash of
all those sources, so any edit to any of them compiles afresh.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

PREFIX = "igc-kernels-"
_ENGINES = Path(__file__).resolve().parent
# What the engines' kernels import, directly or through each other.
ENGINE_SOURCES = (*sorted(_ENGINES.glob("*.py")), _ENGINES.parent / "core" / "numerics.py")


def source_digest(sources: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for path in sources:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        return True
    except OSError:
        return False


@functools.cache
def cache_folder(sources: tuple[Path, ...]) -> Path:
    """The folder for kernels compiled from `sources` as they are now.

    Under $NUMBA_CACHE_DIR when set; else in the package's own __pycache__, where folders of
    earlier sources are removed (they can never match again); else in the user's cache folder;
    else a temporary folder, which caches for this process only."""
    name = PREFIX + source_digest(sources)
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        candidates = [Path(chosen) / name]
    else:
        own = sources[0].parent / "__pycache__"
        user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "igc"
        candidates = [own / name, user / name]
    for folder in candidates:
        if _writable(folder):
            if not chosen:  # a folder of the user's may hold other checkouts' kernels
                _remove_stale(folder)
            return folder
    return Path(tempfile.mkdtemp(prefix=name))


def _remove_stale(current: Path) -> None:
    for other in current.parent.glob(PREFIX + "*"):
        if other != current:
            shutil.rmtree(other, ignore_errors=True)


def keyed_njit(sources: Sequence[Path]) -> Callable:
    """`numba.njit` whose `cache=True` kernels live in `cache_folder(sources)`."""
    sources = tuple(sources)

    def njit(*args, **options):
        from numba import njit as numba_njit
        from numba.core import config

        if args and callable(args[0]):  # bare @njit
            return njit(**options)(args[0])

        def decorate(fn):
            previous = config.CACHE_DIR
            # numba picks a kernel's cache folder when it is decorated, from this setting.
            config.CACHE_DIR = str(cache_folder(sources)) if options.get("cache") else previous
            try:
                return numba_njit(*args, **options)(fn)
            finally:
                config.CACHE_DIR = previous

        return decorate

    return njit


njit = keyed_njit(ENGINE_SOURCES)
