"""`igc models`: the models shipped inside the package, and where decoding looks for others."""

from __future__ import annotations

import json

import typer

from igc.cli.errors import handle_errors


@handle_errors
def models(
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """List the shipped models: id, size, fingerprint, purpose, the default, its photo model."""
    from igc.api import list_models, model_search_path

    data = list_models()
    search = model_search_path()
    if as_json:
        typer.echo(json.dumps({"models": data, "model_path": search}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="igc models (shipped)")
    table.add_column("id", no_wrap=True)
    table.add_column("parameters", justify="right", no_wrap=True)
    table.add_column("MB", justify="right", no_wrap=True)
    table.add_column("fingerprint", no_wrap=True)
    for m in data:
        name = (f"{m['id']} [bold](default)[/]" if m["default"] else
                f"{m['id']} [bold](photos)[/]" if m.get("photographs") else m["id"])
        table.add_row(name, f"{m['parameters']:,}", f"{m['file_bytes'] / 1e6:.1f}",
                      m["fingerprint"])
    console = Console()
    console.print(table)
    for m in data:  # below the table, so that the numbers keep their width at 80 columns
        console.print(f"[bold]{m['id']}[/]: {m['purpose']}", highlight=False)
    console.print("Decoding finds a file's model by its fingerprint: in these, then in the folders "
                  "of IGC_MODEL_PATH" + (f" ({', '.join(search)})." if search else " (not set)."),
                  highlight=False)
