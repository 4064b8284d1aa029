"""The `igc` command. Each subcommand lives in its own module and imports heavy libraries lazily,
so `igc --help` and classical-only benches never load torch. igc/cli/base.py makes Typer's parse
errors one line (`igc: error: ...`) like every other error, and its help free of type tags."""

from __future__ import annotations

import typer

from igc import __version__
from igc.cli.base import IgcCommand, IgcGroup
from igc.cli.bench import bench
from igc.cli.compress import compress
from igc.cli.decompress import decompress
from igc.cli.info import info
from igc.cli.models import models
from igc.cli.plugins import plugins
from igc.cli.speed import speed
from igc.cli.train import train

app = typer.Typer(
    name="igc",
    cls=IgcGroup,
    help="Lossless image compression with ImageGPT, benchmarked against classical codecs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"igc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """igc: ImageGPT image compression."""


app.command("bench", cls=IgcCommand)(bench)
app.command("compress", cls=IgcCommand)(compress)
app.command("decompress", cls=IgcCommand)(decompress)
app.command("info", cls=IgcCommand)(info)
app.command("models", cls=IgcCommand)(models)
app.command("plugins", cls=IgcCommand)(plugins)
app.command("speed", cls=IgcCommand)(speed)
app.command("train", cls=IgcCommand)(train)


def main() -> None:
    """The console script: the group (IgcGroup.main) reports a parse error on one line and
    exits with its code, 2."""
    import os

    if os.environ.get("WORLD_SIZE"):  # a rank (torchrun): torch's C++ log lines, tracebacks
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")  # included, would bury igc's line
    from igc.cli.errors import guard_closed_streams

    guard_closed_streams()
    app(prog_name="igc")


if __name__ == "__main__":
    main()
