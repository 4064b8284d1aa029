"""`igc train`: the command defined next to the trainer (igc/training/command.py), with the
CLI's one-line errors."""

from igc.cli.errors import handle_errors
from igc.training import command

train = handle_errors(command.train)
