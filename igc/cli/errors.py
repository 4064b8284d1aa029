"""One-line errors on the command line; tracebacks only with IGC_DEBUG=1."""

from __future__ import annotations

import errno
import functools
import os
import select
import sys
from collections.abc import Callable
from typing import Any

import typer

from igc.errors import IgcError


def debug() -> bool:
    return os.environ.get("IGC_DEBUG", "") not in ("", "0")


def fail(message: str, code: int = 1) -> typer.Exit:
    sys.stderr.write(f"igc: error: {message}\n")
    return typer.Exit(code)


PIPE_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for a tool a closed pipe stopped
# errors of a write that had no file name: standard output (files igc writes are named in theirs)
STDOUT_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


def pipe_closed() -> typer.Exit:
    """Standard output's reader went away (`igc ... | head -1`): stop quietly, like a Unix tool,
    with status 141. Standard output is pointed at /dev/null first, so the interpreter's own
    flush at exit does not report the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture)
        pass
    return typer.Exit(PIPE_CLOSED)


def write_stdout(data: bytes) -> None:
    """All of `data` to standard output, looping over short writes (a pipe takes 64 KiB at a
    time; a non-blocking one may take less or nothing). BrokenPipeError goes up (see
    `pipe_closed`); any other failure is IgcError `cannot write standard output: ...`."""
    stream = typer.get_binary_stream("stdout")
    try:
        sys.stdout.flush()  # text written before the data stays before it
        stream.flush()
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):  # a test's in-memory capture
            fd = None
        if fd is None:
            stream.write(data)
            stream.flush()
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                select.select([], [fd], [])
                continue
            view = view[written:]
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise IgcError(f"cannot write standard output: {exc.strerror or exc}") from None


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn igc's exceptions (and unexpected ones) into `igc: error: ...` and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = command(*args, **kwargs)
            sys.stdout.flush()  # a full disk or closed pipe shows here, not after we exit
            return result
        except typer.Exit:
            raise
        except BrokenPipeError:
            if debug():
                raise
            raise pipe_closed() from None
        except IgcError as exc:
            if getattr(exc, "silent", False):  # another rank of the run has said why
                raise typer.Exit(exc.exit_code) from None
            if debug():
                raise
            raise fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                       exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except MemoryError:
            raise fail("out of memory: try smaller images or --crop") from None
        except OSError as exc:
            if debug():
                raise
            if exc.errno in STDOUT_ERRORS and exc.filename is None:
                raise fail(f"cannot write standard output: {exc.strerror}") from None
            raise fail(f"unexpected {type(exc).__name__}: {exc} (rerun with IGC_DEBUG=1 for the "
                       "traceback, and please report it)") from None
        except Exception as exc:
            if debug():
                raise
            raise fail(f"unexpected {type(exc).__name__}: {exc} (rerun with IGC_DEBUG=1 for the "
                       "traceback, and please report it)") from None

    return wrapper
