"""What a decoder checks before it returns pixels, and how a failed check is worded.

The encoder stores a CRC-32 of the pixels and one byte of CRC per region of tiles; the decoder
returns pixels only when the whole checksum matches, and names the regions that differ when it
does not. A stream that derails before the end (the range decoder finds it inconsistent) is
refused in the same words: both mean a corrupted file or a machine that computes the model
differently (float numerics decode only on the kind of CPU that wrote them).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from igc.codec import adapt, expert
from igc.codec.context import OVERLAPPED, PREDICTED, can_overlap
from igc.core.protocols import Specified
from igc.core.types import Image
from igc.errors import ChecksumError, FormatError, ModelMismatchError, StreamError

REGIONS = 8
CAUSE = "the file is corrupted or was decoded on a machine that computes the model differently"


def region_checks(tokens: np.ndarray) -> bytes:
    groups = np.array_split(np.arange(len(tokens)), min(REGIONS, len(tokens)))
    return bytes(zlib.crc32(tokens[g].astype(np.uint8).tobytes()) & 0xFF for g in groups)


MISMATCH_HINT = ("decode without --model (igc finds the file's model by its fingerprint) or "
                 "with --model naming the folder that holds")
FOLDER_PLUGINS = ("imagegpt",)  # model plugins whose models are folders of weights


def mismatch_hint(header) -> str:
    """How to decode a file whose model was not the one given: a folder for ImageGPT; for a
    plugin's model, no --model at all (the header names the plugin that rebuilds it)."""
    if header.model_plugin in FOLDER_PLUGINS:
        return f"{MISMATCH_HINT} {header.model_id!r}"
    return (f"decode without --model: the file names its model plugin {header.model_plugin!r}, "
            "which igc loads by that name")


def offered(model, fingerprint: str) -> str:
    """The model a decoder was given, as the user named it (--model) and as it names itself."""
    spec = str((model.spec if isinstance(model, Specified) else None) or model.name)
    named = f"model {model.name!r}, " if spec != model.name else ""
    return f"model {spec!r} ({named}fingerprint {fingerprint})"


def pixel_checksum(image: Image) -> int:
    return zlib.crc32(np.ascontiguousarray(image).tobytes())


def verified(image: Image, tokens: np.ndarray, header) -> Image:
    """`image` if it matches the header's checksum, else ChecksumError naming the tile regions
    that differ: a decoder never returns pixels it has not checked."""
    if pixel_checksum(image) != header.checksum:
        regions = region_checks(tokens)
        bad = [i + 1 for i, (a, b) in enumerate(zip(regions, header.region_checks,
                                                    strict=False)) if a != b]
        order = ("windows in coding order, by anti-diagonal" if header.context in OVERLAPPED else
                 "tiles in raster order")
        where = (f" in tile region(s) {', '.join(map(str, bad))} of {len(regions)} ({order})"
                 if bad else "")
        raise ChecksumError(f"decoded pixels fail the checksum{where}: {CAUSE}")
    return image


def check_composition(codec, header) -> None:
    """Refuse a file `codec` (a NeuralCodec) did not write, before decoding anything: its
    tokens, model, numerics, context mode, tiles and coder must be the codec's."""
    held = header.tokenizer + ("+residual" if header.residual else "")
    if held != codec.mode:
        raise FormatError(f"file holds {held} tokens; this codec decodes {codec.mode}")
    if header.fingerprint != codec.fingerprint:
        if getattr(codec.tokenizer, "fingerprint", None):
            raise ModelMismatchError(
                f"file was encoded with model {header.model_id!r} and its {held} tokenizer's "
                f"data (fingerprint {header.fingerprint}) but "
                f"{offered(codec.model, codec.fingerprint)} with its {codec.tokenizer.name} data "
                f"was given; {MISMATCH_HINT} {header.model_id!r} and the same tokenizer data "
                "(a palette's preprocessor_config.json)")
        raise ModelMismatchError(
            f"file was encoded with model {header.model_id!r} (fingerprint "
            f"{header.fingerprint}) but {offered(codec.model, codec.fingerprint)} was "
            f"given; {mismatch_hint(header)}")
    codec.check_numerics(header)
    if header.context in adapt.ADAPTED and adapt.head_of(codec.model, header.numerics) is None:
        raise FormatError(f"file uses context mode {header.context} (the model adapted to "
                          f"the image), which model {codec.model.name!r} cannot compute under "
                          f"numerics {header.numerics}: decode it without --model (igc finds "
                          "the file's model), or with an ImageGPT model of numerics 2")
    if header.context in adapt.ADAPTED and header.batch > adapt.MAX_ROWS:
        raise FormatError(f"corrupted header: context mode {header.context} steps at most "
                          f"{adapt.MAX_ROWS} tiles at once, not {header.batch}")
    head = adapt.head_of(codec.model, header.numerics)
    if header.context in PREDICTED and head is not None and head[1] != expert.VOCAB:
        raise FormatError(f"file uses context mode {header.context} (8-bit subpixels "
                          f"predicted), which model {codec.model.name!r} of {head[1]} "
                          "symbols cannot code: decode it without --model (igc finds the "
                          "file's model)")
    if header.context in OVERLAPPED and not can_overlap(codec.tokenizer):
        raise FormatError(f"file uses context mode {header.context} (overlapping subpixel "
                          f"tiles), which the {codec.tokenizer.name} tokenizer's "
                          f"{codec.tokenizer.tile}px tiles cannot hold")
    if header.tile != codec.tokenizer.tile or header.order != codec.order:
        raise FormatError(f"file uses {header.tile}px tiles in {header.order} order; model "
                          f"{codec.model.name!r} codes {codec.tokenizer.tile}px tiles in "
                          f"{codec.order} order")
    if (header.coder, header.precision) != (codec.coder.name, codec.coder.precision):
        raise FormatError(f"file was coded with coder {header.coder!r} at {header.precision} "
                          f"bits; this codec uses {codec.coder.name!r} at "
                          f"{codec.coder.precision} bits")


@contextmanager
def stream_checked() -> Iterator[None]:
    """Around the decoding loop: a coder's refusal of a derailed stream (StreamError) becomes the
    checksum's refusal (the pixels cannot be checked, for the same causes)."""
    try:
        yield
    except StreamError as exc:
        raise ChecksumError(f"decoding failed before the checksum could be checked ({exc}): "
                            f"{CAUSE}") from None
