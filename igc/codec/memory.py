"""The memory a decode needs, computed from a header and the model's sizes, and its budget.

A decoder steps every tile of a batch (the header's `batch`: the tiles whose symbols interleave in
one stretch of the stream) together, so it holds the key/value cache of all of them at once: that
memory is set by header fields, not by the image's content. Before anything is laid out or a model
state is made, `check_decode` adds up

    layout  = positions x LAYOUT_BYTES          (tokens, coded flags, padding sources, the gather
                                                 that rebuilds the image; positions = tiles x L;
                                                 context modes 2 and 3: windows, plus a
                                                 context source each, and mode 3's pixel map
                                                 and image: igc.codec.context.layout_bytes)
    state   = model.state_bytes(min(batch, tiles), steps, numerics)   (every lane of one batch;
              in context modes 1-3 plus the adaptation's state and arrays, igc.codec.adapt)

and refuses the file in one line when the sum exceeds the budget ($IGC_MAX_DECODE_MEMORY, default
2 GiB; the model's weights are not counted). Encoders choose a batch that fits the default budget
(`fitting_batch`), so every file igc writes decodes within it. docs/robustness.md has the figures.
"""

from __future__ import annotations

import math
import os

from igc.codec import adapt
from igc.codec.context import layout_bytes
from igc.errors import UsageError

MEMORY_ENV = "IGC_MAX_DECODE_MEMORY"
DEFAULT_BUDGET = 2 << 30  # bytes beyond the model's weights
# bytes per token position of the decode's arrays: tokens (int64), coded flag (bool), padding
# source (int64), and the int64 gather `tokenizer.decode` makes of the tokens
LAYOUT_BYTES = 8 + 1 + 8 + 8
ENCODER_ENGINE = "cpu"  # numerics 2: encoders size their batch for the default CPU decoder


def budget() -> int:
    """$IGC_MAX_DECODE_MEMORY in bytes (an integer, `_` allowed; or with a K, M or G suffix, in
    powers of 1024), else DEFAULT_BUDGET."""
    text = os.environ.get(MEMORY_ENV, "").strip()
    if not text:
        return DEFAULT_BUDGET
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    digits = text[:-1] if scale > 1 else text
    try:
        value = int(digits.replace("_", "")) * scale
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{MEMORY_ENV} must be a positive number of bytes (e.g. 4G), got "
                         f"{text!r}")
    return value


def size(n: int) -> str:
    """Bytes in words, in a unit that keeps a small budget from reading as 0.0 MiB."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / (1 << 10):.1f} KiB" if n >= 1 << 10 else f"{n:,} bytes"


def model_state(model, rows: int, length: int, numerics: int, engine: str | None = None) -> int:
    """Bytes of the model states for `rows` tiles stepped `length` positions (0 for a model that
    does not say: a plugin's own business)."""
    state_bytes = getattr(model, "state_bytes", None)
    if state_bytes is None or rows <= 0 or length <= 0:
        return 0
    if engine is None:
        return int(state_bytes(rows, length, numerics))
    return int(state_bytes(rows, length, numerics, engine=engine))


def geometry(tokenizer, height: int, width: int) -> tuple[int, int, int]:
    """(tiles, positions per tile, positions stepped) of a height x width image, from one tile's
    layout: the largest tile is the first one, and its last coded position is where the
    stepping stops."""
    tile = tokenizer.tile
    one = tokenizer.layout(min(height, tile), min(width, tile))
    grid = getattr(tokenizer, "grid", None)  # overlapping windows (igc.core.overlap) have one
    tiles = math.prod(grid(height, width)) if grid else -(-height // tile) * -(-width // tile)
    length = one.tokens.shape[1]
    coded = one.coded.any(axis=0).nonzero()[0]
    steps = int(coded[-1]) + 1 if len(coded) else length
    return tiles, length, steps


def decode_bytes(model, tokenizer, header, engine: str | None = None) -> tuple[int, int, int]:
    """(layout bytes, state bytes, tiles per batch) of decoding `header`'s file."""
    tiles, length, steps = geometry(tokenizer, header.height, header.width)
    rows = min(header.batch, tiles)
    state = (model_state(model, rows, steps, header.numerics, engine)
             + adaptation_bytes(model, rows, header.numerics, header.context))
    return tiles * length * layout_bytes(header.context, LAYOUT_BYTES), state, rows


def check_decode(model, tokenizer, header, error: type[Exception],
                 limit: int | None = None, engine: str | None = None) -> None:
    """Raise `error` (one line) when decoding `header`'s file needs more than the budget."""
    limit = budget() if limit is None else limit
    layout, state, rows = decode_bytes(model, tokenizer, header, engine)
    if layout + state > limit:
        raise error(
            f"decoding this {header.height}x{header.width} file needs about "
            f"{size(layout + state)} "
            f"({rows} tiles stepped together: {size(state)} of model state; token layout "
            f"{size(layout)}), more than the budget of {size(limit)} (set {MEMORY_ENV} to raise it)")


def adaptation_bytes(model, rows: int, numerics: int, context: int) -> int:
    """Context modes 1-3's state and per-step arrays for `rows` tiles (0 in mode 0)."""
    head = adapt.head_of(model, numerics) if context in adapt.ADAPTED else None
    return 0 if head is None else adapt.state_bytes(rows, head[0], head[1])


def fitting_batch(model, tokenizer, height: int, width: int, numerics: int, wanted: int,
                  context: int = 0) -> int:
    """The largest batch up to `wanted` whose decode fits DEFAULT_BUDGET on the default CPU
    engine (at least 1; `check_decode` refuses an image too large for even that)."""
    tiles, length, steps = geometry(tokenizer, height, width)
    rows = min(wanted, tiles)
    spare = DEFAULT_BUDGET - tiles * length * layout_bytes(context, LAYOUT_BYTES)

    def state(n: int) -> int:
        return (model_state(model, n, steps, numerics, ENCODER_ENGINE)
                + adaptation_bytes(model, n, numerics, context))

    per_tile = state(1)
    if per_tile <= 0 or state(rows) <= spare:
        return wanted
    fit = max(1, spare // per_tile)
    while fit > 1 and state(fit) > spare:
        fit -= 1
    return int(fit)
