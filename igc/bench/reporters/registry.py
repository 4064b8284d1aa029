"""Built-in reporters, registered like any plugin's."""

from igc.plugins.markers import hookimpl
from igc.reporters.files import CsvReporter, JsonReporter, MarkdownReporter, PlotReporter
from igc.reporters.table import TableReporter


@hookimpl
def register_reporters(register):
    for reporter in (TableReporter, JsonReporter, CsvReporter, MarkdownReporter, PlotReporter):
        register(reporter)
