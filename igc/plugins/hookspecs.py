"""The hooks a plugin can implement.

Each hook receives a `register` callable. Pass it a class (or a zero-argument-or-options factory)
that has a `name` attribute; it is instantiated only when a user selects that name, so listing
plugins never imports torch or a codec library.
"""

from igc.plugins.markers import hookspec


@hookspec
def register_compressors(register):
    """Register `Compressor` classes (classical codecs, or model-based compressors)."""


@hookspec
def register_tokenizers(register):
    """Register `Tokenizer` classes."""


@hookspec
def register_models(register):
    """Register `Model` loaders."""


@hookspec
def register_coders(register):
    """Register `Coder` classes."""


@hookspec
def register_reporters(register):
    """Register `Reporter` classes."""
