"""One-line errors on the command line; tracebacks only with IGC_DEBUG=1."""

from __future__ import annotations

import functools
import os
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


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn igc's exceptions (and unexpected ones) into `igc: error: ...` and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
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
        except Exception as exc:
            if debug():
                raise
            raise fail(f"unexpected {type(exc).__name__}: {exc} (rerun with IGC_DEBUG=1 for the "
                       "traceback, and please report it)") from None

    return wrapper
