"""Context modes: how a file's tiles see the image coded before them, and what each mode implies
for the plan (which tiles step together) and the layout (igc.core.container.CONTEXT_MODES).

- 0: tiles coded alone, in batches (any engine may group them freely under numerics 2).
- 1: the same tiles and batches; the model's distributions adapt to the image as it is coded
  (igc.codec.adapt).
- 2: mode 1's adaptation, and tiles laid out as windows overlapping their upper and left
  neighbours by one pixel (igc.core.overlap), stepped by anti-diagonals.
- 3: mode 2, and a classical predictor over the whole decoded image mixed into the adapted
  scores (igc.codec.expert).
- 4: mode 3 with the model's norms and biases tuned to the image, the changes sent at the head
  of the payload (igc.codec.tuned); the loop itself runs mode 3 with the tuned model.
"""

from __future__ import annotations

from igc.codec import adapt, expert, loop
from igc.core.overlap import OverlapTiling, overlappable, window_grid

OVERLAP = 2
EXPERT = expert.MODE
TUNED = adapt.TUNED
OVERLAPPED = (OVERLAP, EXPERT, TUNED)  # the modes whose tiles are overlapping windows
PREDICTED = (EXPERT, TUNED)  # the modes that mix mode 3's predictor in
# context mode 1 (the model adapted to the image) is what new files use by default, on images of
# at least this many tiles: on fewer it has too few steps to learn (docs/design.md)
ADAPT_MIN_TILES = 16
# mode 1's default batch: it learns after every step, so smaller batches learn more often (two
# lanes of 16 tiles keep two cores busy); the extra steps cost time (docs/design.md)
ADAPT_BATCH = 32
# mode 2's: an anti-diagonal's windows step together, up to this many (an anti-diagonal holds at
# most min(rows, columns) windows: 35 for a Kodak photo, 52 for 1024×768), in two lanes or more.
# Eight, not a whole anti-diagonal: a decoder step reads every window's key/value cache, and two
# lanes of 4 default-model windows (1.5 MiB each at full length) stay in a 32 MiB L3 where 35 do
# not; kodim23 decodes 13% faster than at 64, encodes 3% slower, in 0.08% fewer bytes
# (docs/speed.md)
OVERLAP_BATCH = 8
OVERLAP_LANE = 32
# mode 4's: the mode that spends time for bytes steps 4 windows at a time, which learns more
# often for 0.28% fewer bytes on kodim23 (the whole photo in strips codes in the same time; a
# 256×256 crop in lanes decodes 20-25% slower; docs/speed.md, "An adapted step in fewer calls")
TUNED_BATCH = 4
def layout_bytes(context: int, per_position: int) -> int:
    """Bytes per token position of a decode's arrays: `per_position`, plus the windows' context
    sources (an int64 each), and in mode 3 the predictor's pixel map (an int32 each) and its
    image and errors (two int16 per subpixel, fewer than positions)."""
    return per_position + (8 if context in OVERLAPPED else 0) + (8 if context in PREDICTED else 0)


# mode 2 is the default where its anti-diagonals are long enough to keep the steps few: on an
# image with at least this many windows per anti-diagonal on average (from about 227×227 pixels).
# Measured against mode 1, one thread (docs/design.md, "Context mode 2"): 1.2× the time for 2.3%
# fewer bits on a 256×256 crop (9.3 windows per anti-diagonal), 1.6× on a 128×128 (4.8), 2.3×
# on a 64×64 (2.8)
OVERLAP_MIN_WAVE = 8


def can_overlap(tokenizer) -> bool:
    """Whether the tokenizer's tiles can be laid out as overlapping windows (mode 2)."""
    return overlappable(tokenizer)


def tiling(tokenizer, context: int):
    """What lays out a file of this context mode: the tokenizer, or its overlapping windows."""
    return OverlapTiling(tokenizer) if context in OVERLAPPED else tokenizer


def default_mode(model, tokenizer, height: int, width: int) -> int:
    """The context mode of a new file when none is asked for: 3 on images whose anti-diagonals
    hold OVERLAP_MIN_WAVE windows on average (2 for a model whose symbols are not 8-bit
    subpixels), else 1 on images of ADAPT_MIN_TILES tiles, else 0; modes 1-3 only where the
    model's head can be adapted. Mode 3 over mode 2: 2.0% fewer bits on the gallery's 256×256
    crops, 1.1% on training photographs (docs/design.md, "Context mode 3")."""
    head = adapt.head_of(model, model.numerics)
    if head is None:
        return 0
    if can_overlap(tokenizer):
        rows, cols = window_grid(height, width, tokenizer.tile)
        if rows * cols >= OVERLAP_MIN_WAVE * (rows + cols - 1):
            return EXPERT if head[1] == expert.VOCAB else OVERLAP
    rows, cols = tokenizer.grid(height, width)
    return adapt.MODE if rows * cols >= ADAPT_MIN_TILES else 0


def default_batch(context: int, plain: int) -> int:
    """Tiles per batch when the codec was given none: `plain` in mode 0."""
    return {0: plain, adapt.MODE: ADAPT_BATCH, OVERLAP: OVERLAP_BATCH,
            EXPERT: OVERLAP_BATCH, TUNED: TUNED_BATCH}[context]


def plan(job: loop.Job, batch: int, lane: int) -> list[loop.Group]:
    """The groups of one image's job: batches in order, or, for mode 2's windows (a layout
    with groups), its anti-diagonals."""
    if job.groups is not None:
        return loop.waves(job, job.groups, batch, lane)
    return loop.batches(job, batch, lane)
