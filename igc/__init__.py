"""igc: lossless image compression with ImageGPT, and an honest benchmark beside classical codecs."""

from igc.api import (
    bench,
    compress,
    decompress,
    get_compressor,
    info,
    list_compressors,
    list_models,
    register_plugin,
    report,
    set_engine,
)
from igc.errors import (
    ChecksumError,
    CodecUnavailable,
    FormatError,
    IgcError,
    ImageError,
    ModelError,
    ModelMismatchError,
    PluginError,
    StreamError,
    UsageError,
)
from igc.plugins.markers import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = [
    "ChecksumError",
    "CodecUnavailable",
    "FormatError",
    "IgcError",
    "ImageError",
    "ModelError",
    "ModelMismatchError",
    "PluginError",
    "StreamError",
    "UsageError",
    "__version__",
    "bench",
    "compress",
    "decompress",
    "get_compressor",
    "hookimpl",
    "hookspec",
    "info",
    "list_compressors",
    "list_models",
    "register_plugin",
    "report",
    "set_engine",
]
