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
from collections.abc import Iterable
from pathlib import Path

from igc.core.files import file_kind
from igc.core.writing import replacing
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


def _system_refusals(check):
    """`check`, with what the system refuses about the path itself (a name too long, a loop of
    symbolic links) said in one line like the rest."""

    def checked(path: Path, *args, **kwargs) -> None:
        try:
            check(path, *args, **kwargs)
        except (OSError, RuntimeError) as exc:  # pathlib raises RuntimeError for a link loop
            reason = (exc.strerror if isinstance(exc, OSError) else None) or \
                "too many levels of symbolic links"
            raise UsageError(f"cannot write {path}: {reason}") from None

    checked.__doc__ = check.__doc__
    return checked


@_system_refusals
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


@_system_refusals
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


def write_atomic(path: Path, data: bytes, force: bool) -> None:
    """Write via a temporary file and rename, so a failure never truncates an existing output."""
    check_output(path, force=force)  # again: the file may have appeared while we coded
    with replacing(path, IgcError) as tmp:
        tmp.write_bytes(data)
