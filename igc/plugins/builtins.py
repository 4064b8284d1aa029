"""igc's built-in plugins, listed in one place.

This module is registered exactly like an installed package's entry point (igc/plugins/manager.py
loads it first), so a built-in has no path a third-party plugin lacks: everything below could live
in another package. Importing it imports no codec library and no torch; a factory runs only when a
user selects its name.
"""

from igc.coders.range import RangeCoder
from igc.compressors.classical import COMPRESSORS
from igc.core.palette import PaletteTokenizer
from igc.core.tokenizer import SubpixelTokenizer
from igc.models.imagegpt import ImageGPTModel
from igc.models.uniform import UniformModel
from igc.plugins.markers import hookimpl
from igc.reporters.files import CsvReporter, JsonReporter, MarkdownReporter, PlotReporter
from igc.reporters.table import TableReporter


@hookimpl
def register_compressors(register):
    for compressor in COMPRESSORS:  # png, webp, jxl, jpeg2000, jpegls, zstd, lzma
        register(compressor)


@hookimpl
def register_tokenizers(register):
    register(SubpixelTokenizer)
    register(PaletteTokenizer)


@hookimpl
def register_models(register):
    register(ImageGPTModel, name="imagegpt")  # its instances' `name` is the checkpoint's id
    register(UniformModel)


@hookimpl
def register_coders(register):
    register(RangeCoder)


@hookimpl
def register_reporters(register):
    for reporter in (TableReporter, JsonReporter, CsvReporter, MarkdownReporter, PlotReporter):
        register(reporter)
