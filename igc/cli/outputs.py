"""The files the command line writes: checked before any work, and written so that a failure never
costs the user a file.

An output is refused before anything is coded when it could not be written (missing folder, a
directory, a folder without write permission) or must not be (it is an input; it exists, a
dangling symlink included, and --force was not given): finding out after a long encode wastes
the encode. Files are written through a temporary file and a rename, with the mode a plain
`open()` would give (the user's umask), or with --force the mode of the file they replace.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from igc.core.files import file_kind
from igc.errors import IgcError, UsageError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist (a dangling symlink included)
        return False


def _check_folder(path: Path, label: str) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{label}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{label}: folder {folder} is not writable")


def _special(path: Path) -> str | None:
    """What `path` is when it exists and is neither a regular file nor a symbolic link (which a
    rename replaces as a link, never writing through it): a device node, FIFO or socket."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return None
    return file_kind(mode)


def check_output(path: Path, *, force: bool, inputs: Iterable[Path] = ()) -> None:
    """Refuse an output file that cannot or must not be written; call it before any work."""
    if any(_same_file(path, source) for source in inputs):
        raise UsageError(f"{path} is the input file; write the output elsewhere")
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a file")
    special = _special(path)
    if special:  # --force would replace the node by a regular file (as root: the system's)
        raise UsageError(f"{path} is {special}, not a regular file; igc writes only regular "
                         "files (-o - writes to standard output)")
    if os.path.lexists(path) and not force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    _check_folder(path, f"cannot write {path}")


def check_report(path: Path, option: str, inputs: Iterable[Path], *, force: bool = False
                 ) -> None:
    """Refuse a --csv/--plot file that is an input image, a directory, not a regular file, in no
    folder, or exists (a dangling symlink included) without --force."""
    if any(_same_file(path, source) for source in inputs):
        raise UsageError(f"{option} {path} is one of the input images; it would be overwritten")
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory, not a file")
    special = _special(path)
    if special:
        raise UsageError(f"{option} {path} is {special}, not a regular file; igc writes only "
                         "regular files")
    if os.path.lexists(path) and not force:
        raise UsageError(f"{option} {path} exists; pass --force to overwrite it")
    _check_folder(path, f"{option} {path}")


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """The replaced file's permissions (--force), else what the umask gives a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except OSError:  # no such file, or a dangling symlink
        return 0o666 & ~_umask()


def write_atomic(path: Path, data: bytes, force: bool) -> None:
    """Write via a temporary file and rename, so a failure never truncates an existing output."""
    check_output(path, force=force)  # again: the file may have appeared while we coded
    mode = _mode_for(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise IgcError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)  # mkstemp creates 0600
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise IgcError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
