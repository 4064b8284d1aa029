"""Reading the small files beside a model (config.json, preprocessor_config.json) and checking
the large ones (weights) before a library opens them: regular files only, bounded sizes.

A model folder can come from anyone (`IGC_MODEL_PATH`, `--model`, `--init-from`): a FIFO named
config.json would block `open()` forever, a 1.5 GB config would be read whole, and a config
nested 100,000 levels deep makes `json` raise RecursionError. Each is one error line instead.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

MAX_JSON_BYTES = 1 << 20  # a model's config.json is about 1 KB; a palette's clusters 20 KB


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words, from its `st_mode`."""
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def check_regular(path: Path, error: type[Exception]) -> int:
    """The size of `path` (symbolic links followed) if it is a regular file, else `error`."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path} is {file_kind(st.st_mode)}, not a regular file")
    return st.st_size


def read_json(path: Path, error: type[Exception], limit: int = MAX_JSON_BYTES):
    """The JSON value in `path`: a regular file (opened without blocking, checked on the open
    descriptor) of at most `limit` bytes, nested no deeper than `json` can parse. Raises `error`
    with one line for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # before fdopen, which refuses a directory itself
        os.close(fd)
        raise error(f"{path} is {file_kind(st.st_mode)}, not a regular file")
    with os.fdopen(fd, "rb") as fh:
        if st.st_size > limit:
            raise error(f"{path} is {st.st_size:,} bytes; igc reads JSON files of at most "
                        f"{limit:,} bytes")
        try:
            raw = fh.read(limit + 1)
        except OSError as exc:
            raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise error(f"{path} is more than {limit:,} bytes; igc reads JSON files of at most "
                    f"{limit:,} bytes")
    try:
        return json.loads(raw)
    except RecursionError:
        raise error(f"cannot read {path}: JSON nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise error(f"cannot read {path}: {str(exc)[:200]}") from None
