"""Writing a file so that a failure never costs the user one: into a temporary file beside it,
renamed over it when complete.

The rename replaces a symbolic link itself, never the file it points to (a report written
through `--csv link.csv -f` once overwrote the link's target), and a file that was there keeps
its permissions; a new one gets what a plain `open()` would give (the umask).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask


def mode_for(path: Path) -> int:
    """The replaced file's permissions, else what the umask gives a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except OSError:  # no such file, or a dangling symlink
        return 0o666 & ~_umask()


@contextmanager
def replacing(path: Path, error: type[Exception]) -> Iterator[Path]:
    """A temporary path beside `path` (a dot file with the same suffix, so a writer that picks
    its format by the name picks the same), renamed over `path` when the block ends without an
    error, removed when it ends with one; `error` with one line for what the system refuses."""
    path = Path(path)
    mode = mode_for(path)
    try:  # the name's start only: a name near the system's limit must still fit
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:64]}-", suffix=path.suffix,
                                   dir=path.parent)
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        try:
            os.fchmod(fd, mode)  # mkstemp creates 0600
        finally:
            os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise error(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
