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


class _ClosedStream:
    """Standard input or output as Python leaves it when the process started with it closed
    (`igc ... >&-`): None, on which every print and click's binary stream lookup failed as an
    'unexpected' error. This one says which stream is closed, on the first real read or write;
    empty writes and reads (click's probes) and flushes pass, so a command that never uses the
    stream does not fail for it."""

    def __init__(self, name: str, binary: bool) -> None:
        self.name, self.binary = name, binary
        self.buffer = None if binary else _ClosedStream(name, True)

    def _closed(self) -> IgcError:
        verb = "read" if self.name == "input" else "write"
        return IgcError(f"cannot {verb} standard {self.name}: it is closed")

    def write(self, data: Any) -> int:
        if isinstance(data, bytes | bytearray | memoryview) != self.binary:
            raise TypeError("a closed standard stream of the other kind")  # click's probe
        if len(data):
            raise self._closed()
        return 0

    def read(self, size: int = -1) -> Any:
        if size == 0:
            return b"" if self.binary else ""
        raise self._closed()

    readline = read

    closed = False  # writes are tried, and say which stream is closed

    def flush(self) -> None:
        pass

    def close(self) -> None:  # multiprocessing's forked children close stdin first
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, f"standard {self.name} is closed")


def guard_closed_streams() -> None:
    """Give a standard input or output that was closed when igc started a stand-in that says
    so in one line (see _ClosedStream)."""
    if sys.stdin is None:
        sys.stdin = _ClosedStream("input", False)
    if sys.stdout is None:
        sys.stdout = _ClosedStream("output", False)


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
