"""`python -m igc` runs the CLI (the same as the `igc` command)."""

from igc.cli.app import main

main()
