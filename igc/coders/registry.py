"""Built-in coders, registered like any plugin's."""

from igc.coders.range import RangeCoder
from igc.plugins.markers import hookimpl


@hookimpl
def register_coders(register):
    register(RangeCoder)
