"""`python -m igc.training ...`: the `igc train` command without the rest of the CLI.

Useful for long background runs that should not depend on the whole CLI importing cleanly. Errors
a user can cause print one line, as `igc train` does (IGC_DEBUG=1 shows the traceback).
"""

import os
import sys

import typer

from igc.errors import IgcError
from igc.training.command import train


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train)
    try:
        app(prog_name="python -m igc.training")
    except IgcError as exc:
        if os.environ.get("IGC_DEBUG", "") not in ("", "0"):
            raise
        sys.stderr.write(f"igc train: error: {str(exc).splitlines()[0]}\n")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
