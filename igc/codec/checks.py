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

from igc.codec.context import OVERLAPPED
from igc.core.protocols import Specified
from igc.core.types import Image
from igc.errors import ChecksumError, StreamError

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


@contextmanager
def stream_checked() -> Iterator[None]:
    """Around the decoding loop: a coder's refusal of a derailed stream (StreamError) becomes the
    checksum's refusal (the pixels cannot be checked, for the same causes)."""
    try:
        yield
    except StreamError as exc:
        raise ChecksumError(f"decoding failed before the checksum could be checked ({exc}): "
                            f"{CAUSE}") from None
