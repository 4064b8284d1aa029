"""`python -m igc.training ...`: the `igc train` command without the rest of the CLI.

Useful for long background runs that should not depend on the whole CLI importing cleanly.
"""

import typer

from igc.cli.train import train

if __name__ == "__main__":
    typer.run(train)
