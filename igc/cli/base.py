"""What every `igc` command shares: one-line usage errors, and help without type tags.

Typer reports a usage error (unknown option, bad value, extra argument) in a multi-line box, and
its help shows every parameter's Python type (`<bool>`, `<list[str]>`). igc's group runs its
commands without Typer's standalone handling and turns those errors into the same single line,
`igc: error: ...`, that every other error gives (igc/cli/errors.py); its commands name their
values with plain metavars (`N`, `PATH`, `TEXT`) and flags with none.

Typer's rich help keeps the line breaks of a command's docstring, so each paragraph of a
command's docstring is written on one line (tests/test_cli_usability.py checks).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from igc.cli.errors import debug
from igc.errors import IgcError

# the context mode of new files, an option of compress and bench
CONTEXT = typer.Option(None, "--context", metavar="MODE", min=0, max=4,
                       help="Context mode of new files: 0 codes every tile alone; 1 also adapts "
                            "the model to the image as it is coded (decoders repeat it exactly); "
                            "2 adapts too, and overlaps each tile with the last row and column "
                            "of its upper and left neighbours; 3 is 2 with a classical predictor "
                            "over the decoded image mixed in; 4 is 3 with the model's norms and "
                            "biases tuned to the image first and the changes stored in the "
                            "file (about 1% smaller, the encode about 3x slower; needs torch). "
                            "Default, where the model allows "
                            "it: 3 on images of about 227×227 pixels or more, 1 on images of 16 "
                            "tiles or more, else 0.")
STRIP_ROWS = typer.Option(None, "--strip-rows", metavar="ROWS", min=0,
                          help="Cut new files into strips of ROWS rows, each coded on its own so "
                               "that cores decode them side by side (0: no strips). Default: "
                               "photos in context modes 2 to 4 in the most strips, 2, 4, 8, "
                               "..., whose windows' anti-diagonals still average 8 windows (a "
                               "Kodak photo: 2 lying, 4 standing).")

# Typer re-exports only `BadParameter` of click's exceptions; its bases are the classes a parse
# error is raised as (click's UsageError) and the base of every error click can show.
USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
CLI_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

# what a value is called in help when its option gives no metavar, by Typer's type label
METAVARS = {"int": "N", "float": "X", "path": "PATH", "str": "TEXT", "list[str]": "TEXT",
            "list[Path]": "PATH", "list[path]": "PATH"}


def one_line(message: str) -> str:
    """A message on one line, starting lower-case as igc's own messages do."""
    text = " ".join(message.split())
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def usage_message(exc: Exception) -> str:
    """`igc: error: ...` for a parse error, with where to find help."""
    text = one_line(exc.format_message())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        text = f"{text.rstrip('.')}; see '{ctx.command_path} --help'"
    return text


class _PlainArgument(TyperArgument):
    """An argument shown as its metavar (`IMAGE...`), without Typer's `<path>` tag or braces."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def plain_help(params: Sequence[Any]) -> None:
    """Give every parameter a plain metavar: flags none, values one from METAVARS."""
    for param in params:
        if isinstance(param, TyperArgument):
            param.__class__ = _PlainArgument
        elif param.metavar is None:
            flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
            param.metavar = "" if flag else METAVARS.get(_type_label(param), "TEXT")


def _type_label(param: Any) -> str:
    try:
        return param.display_type(None).strip("<>")
    except Exception:  # a choice needs a context; any other label reads as TEXT
        return ""


class PlainHelp:
    """Mixed into igc's command classes: help names values plainly (see `plain_help`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_help(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class IgcCommand(PlainHelp, TyperCommand):
    """A subcommand whose help names values plainly."""


class IgcGroup(PlainHelp, TyperGroup):
    """The `igc` group: runs a command and reports Typer's parse errors on one line."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except USAGE_ERROR as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `igc` alone: the help is printed
                code = exc.exit_code
            else:
                if debug():
                    raise
                sys.stderr.write(f"igc: error: {usage_message(exc)}\n")
                code = exc.exit_code
        except CLI_ERROR as exc:
            if debug():
                raise
            sys.stderr.write(f"igc: error: {one_line(exc.format_message())}\n")
            code = exc.exit_code
        except typer.Abort:
            sys.stderr.write("igc: error: aborted\n")
            code = 1
        except IgcError as exc:  # raised before any command ran: --help to a closed stdout
            if debug():
                raise
            sys.stderr.write(f"igc: error: {exc}\n")
            code = exc.exit_code
        if not standalone_mode:
            return code
        sys.exit(code)
