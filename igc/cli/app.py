"""The `igc` command. Each subcommand lives in its own module and imports heavy libraries lazily,
so `igc --help` and classical-only benches never load torch."""

from __future__ import annotations

import typer

from igc import __version__
from igc.cli.bench import bench
from igc.cli.codec import compress, decompress, info
from igc.cli.models import models
from igc.cli.plugins import plugins
from igc.cli.speed import speed
from igc.cli.train import train

app = typer.Typer(
    name="igc",
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


app.command("bench")(bench)
app.command("compress")(compress)
app.command("decompress")(decompress)
app.command("info")(info)
app.command("models")(models)
app.command("plugins")(plugins)
app.command("speed")(speed)
app.command("train")(train)


def main() -> None:
    app(prog_name="igc")


if __name__ == "__main__":
    main()
