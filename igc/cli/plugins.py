"""`igc plugins`: what is installed, from where, and what each plugin registers."""

from __future__ import annotations

import json

import typer

from igc.cli.errors import handle_errors


@handle_errors
def plugins(
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """List plugins (built-in and installed), their versions and what they register."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from igc.api import list_plugins

    data = list_plugins()
    if as_json:
        typer.echo(json.dumps({"plugins": data}, indent=2))
        return
    table = Table(title="igc plugins")
    for col in ("plugin", "version", "kind", "registers"):
        table.add_column(col)
    for entry in data:
        kind = "built-in" if entry["builtin"] else "installed"
        if entry["error"]:
            table.add_row(entry["name"], entry["version"], kind,
                          f"[red]failed: {escape(entry['error'])}[/]")
            continue
        parts = []
        for what, names in entry["registers"].items():
            shown = [f"{n} [yellow](unavailable)[/]" if n in entry["unavailable"] else n
                     for n in names]
            parts.append(f"{what}s: {', '.join(shown)}")
        table.add_row(entry["name"], entry["version"], kind, "\n".join(parts) or "—")
    Console().print(table)
