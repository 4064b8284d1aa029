"""pluggy markers. Plugins import these as `igc.hookimpl`."""

import pluggy

PROJECT = "igc"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
