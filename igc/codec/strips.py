"""Strips: a photograph cut into bands of rows, each coded as an image of its own (format 6).

Within an image the codec is serial: every step's distributions depend on the steps before it
(the windows' context, the adaptation's state), and its lanes share each step's work only, with
a hand-off and the step's Python in between. On a whole Kodak photo two lanes decode hardly
faster than one, where two processes decoding one image each run at full speed
(docs/speed.md, "Strips"). A strip has its own windows, adaptation, predictor and range-coder
stream, and depends on no other strip, so cores decode strips side by side, the whole of their
work, not a share of each step. Measured on kodim23, strips cost nothing in bytes: the
adaptation restarting on a band of its own fits it as well as the whole image does.

The file records the rows per strip (the header's `strip_rows`, the last strip may have fewer)
and the payload starts with the byte lengths of every strip's stream but the last (varints),
then the streams in order. The header's pixel checksum covers the whole image; its region
checks cover the strips' tokens, strip after strip. How many strips is the encoder's choice,
never the machine's, so a file's bytes do not depend on where it was written.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np

from igc.codec.checks import pixel_checksum, region_checks, stream_checked, verified
from igc.codec.context import OVERLAP_MIN_WAVE, OVERLAPPED
from igc.codec.loop import Progress
from igc.codec.strip_workers import each_strip
from igc.core import container
from igc.core.numerics import regroupable
from igc.core.overlap import window_grid
from igc.core.types import Image, TokenizedImage
from igc.errors import FormatError, UsageError


def default_strip_rows(height: int, width: int, context: int, tile: int) -> int:
    """Rows per strip of a new file (0: one strip, a version-5 file): the image cut into the
    largest power of two of strips whose windows' anti-diagonals still hold OVERLAP_MIN_WAVE
    windows on average (what makes modes 2 and 3 the default: `keeps_waves`), where the context
    mode steps windows. A power of two shares evenly between 2, 4, 8 or 16 cores: a Kodak
    photo is 2 strips lying, 4 standing; a BSDS500 photo (481×321) 2 either way."""
    if context not in OVERLAPPED:
        return 0
    count = 1
    while keeps_waves(height, width, 2 * count, tile):
        count *= 2
    return 0 if count == 1 else -(-height // count)


def keeps_waves(height: int, width: int, count: int, tile: int) -> bool:
    """Whether every one of `count` strips of a height×width image (the last, the shortest,
    decides) lays out windows whose anti-diagonals average OVERLAP_MIN_WAVE or more."""
    rows = -(-height // count)
    last = height - (count - 1) * rows
    if rows < 2 or last < 2:
        return False
    grid_rows, grid_cols = window_grid(last, width, tile)
    return grid_rows * grid_cols >= OVERLAP_MIN_WAVE * (grid_rows + grid_cols - 1)


def spans(height: int, strip_rows: int) -> list[tuple[int, int]]:
    """(first row, end row) of every strip."""
    return [(top, min(top + strip_rows, height)) for top in range(0, height, strip_rows)]


def join_payloads(payloads: list[bytes]) -> bytes:
    """The file's payload: the lengths of every stream but the last, then the streams."""
    return (b"".join(container.encode_varint(len(p)) for p in payloads[:-1])
            + b"".join(payloads))


def split_payload(payload: bytes, count: int) -> list[bytes]:
    """The `count` strips' streams of a payload (FormatError where its lengths do not fit)."""
    try:
        lengths, start = container.read_varints(payload, count - 1)
    except FormatError:
        raise FormatError(f"corrupted file: the payload ends inside its table of {count} "
                          "strips") from None
    if start + sum(lengths) > len(payload):
        raise FormatError(f"corrupted file: {count} strips of {start + sum(lengths)} bytes and "
                          f"more in a payload of {len(payload)}")
    streams = []
    for length in lengths:
        streams.append(payload[start : start + length])
        start += length
    return [*streams, payload[start:]]


def strip_codec(codec: Any, context: int, batch: int, lane: int) -> Any:
    """The codec that codes one strip: the whole image's context mode, batch and lane (what
    the header records for every strip), and no strips of its own."""
    sub = copy.copy(codec)
    sub.context, sub.batch, sub.lane, sub.strip_rows = context, batch, lane, 0
    return sub


def _layout(codec: Any, height: int, width: int) -> tuple[Any, list[tuple[int, int]], int, int]:
    """(strip codec, spans, batch, lane) of a new file of a height x width image."""
    shape = (height, width)
    n = codec.tiles(*shape)
    rows = codec.strip_rows_for(height, width)
    top = (0, min(rows, height))
    context = codec.context_for(n, shape)
    # the header's batch and lane are the first strip's (the tallest): the strips' are the same
    first = strip_codec(codec, context, codec.batch, codec.lane)
    batch = first.batch_for(codec.tiles(top[1], width), (top[1], width))
    lane = first.lane_for(codec.tiles(top[1], width), (top[1], width))
    return strip_codec(codec, context, batch, lane), spans(height, rows), batch, lane


def encode(codec: Any, image: Image, progress: Progress | None = None
           ) -> tuple[bytes, float, int]:
    """`codec.encode(image)` for an image the codec cuts into strips: (the file, its model
    bits, its header's bytes)."""
    height, width = image.shape[:2]
    sub, bands, batch, lane = _layout(codec, height, width)

    def one(i: int, threads: int, report: Progress | None) -> tuple[TokenizedImage, bytes, float]:
        top, end = bands[i]
        tok = sub._tokens(np.ascontiguousarray(image[top:end]))
        encoder = sub._encoder()
        bits = sub.encode_tokens(tok, encoder, report, threads=threads)
        return tok, encoder.finish(), bits

    done = each_strip(one, len(bands), progress, codec.batched_engine,
                      regroupable(codec.model.numerics))
    payload = join_payloads([stream for _, stream, _ in done])
    tokens = np.concatenate([tok.tokens for tok, _, _ in done])
    header = container.Header(
        height=height, width=width, tile=codec.tokenizer.tile, model_id=codec.model.name,
        fingerprint=codec.fingerprint, checksum=pixel_checksum(image),
        region_checks=region_checks(tokens), payload_length=len(payload), batch=batch,
        lane=lane, tokenizer=codec.tokenizer.name, order=codec.order, coder=codec.coder.name,
        precision=codec.coder.precision, numerics=codec.model.numerics,
        model_plugin=codec.plugin, distributions=codec.distributions, context=sub.context,
        version=container.STRIPS_VERSION, strip_rows=bands[0][1])
    data = container.pack(header, payload)
    return data, float(sum(b for _, _, b in done)), len(data) - len(payload)


def estimate_bits(codec: Any, image: Image) -> float:
    """The model bits of the file `encode` writes, through the encoder's own loop per strip."""
    sub, bands, _, _ = _layout(codec, *image.shape[:2])

    def one(i: int, threads: int, report: Progress | None) -> float:
        top, end = bands[i]
        tok = sub._tokens(np.ascontiguousarray(image[top:end]))
        return sub.stepped_bits(tok, threads=threads)

    return float(sum(each_strip(one, len(bands), None, codec.batched_engine,
                                regroupable(codec.model.numerics))))


def decode(codec: Any, header: container.Header, payload: bytes,
           progress: Progress | None = None) -> Image:
    """The pixels of a file in strips, checked against the header's checksum."""
    if header.residual:
        raise FormatError("corrupted header: strips hold lossless tokens, not residuals")
    bands = spans(header.height, header.strip_rows)
    streams = split_payload(payload, len(bands))
    tiling = codec.tiling(header.context)

    def one(i: int, threads: int, report: Progress | None) -> tuple[np.ndarray, Image]:
        top, end = bands[i]
        part = replace(header, height=end - top, strip_rows=0, version=container.VERSION,
                       payload_length=len(streams[i]))
        decoder = codec._decoder(streams[i])
        with stream_checked():
            tokens = codec.decode_tokens(part, decoder, report, threads=threads)
        return tokens, tiling.decode(tokens, end - top, header.width)

    done = each_strip(one, len(bands), progress, codec.batched_engine,
                      regroupable(header.numerics))
    image = np.concatenate([pixels for _, pixels in done])
    return verified(image, np.concatenate([tokens for tokens, _ in done]), header)


def check_strips(codec: Any, strip_rows: int | None) -> int | None:
    """`strip_rows` as NeuralCodec takes it (None: the default; 0: never), refused where the
    codec cannot cut strips."""
    if strip_rows is None or strip_rows == 0:
        return strip_rows
    if strip_rows < 0:
        raise UsageError(f"strip rows must be 0 (no strips) or more, got {strip_rows}")
    if not codec.tokenizer.lossless or codec.residual:
        raise UsageError(f"strips code lossless tokens; the {codec.mode} tokens of this codec "
                         "cannot be cut (leave strips off)")
    return strip_rows
