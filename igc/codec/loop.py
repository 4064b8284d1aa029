"""The codec loop: one driver steps tiles through the model, for the encoder and the decoder alike.

Encoder and decoder must compute the same probabilities in the same order, so they share this
loop rather than each keeping a copy of it. What differs is the *action* taken at each step on
the coded positions: the encoder codes the tokens it knows (`Encoding`), the decoder decodes them
and writes them into its tokens (`Decoding`), then copies the padding positions its layout names;
an estimate only sums the model bits (`Measuring`). In context mode 1 an adaptation
(igc/codec/adapt.py) sits between the model and the action, and learns from each step's symbols.

The loop runs a *plan*: a list of `Group`s, each a set of tiles (`Part`s of one or more `Job`s,
a job being one image's tiles and its action) stepped together from the start token to the
group's last step, one group after the other. How the tiles are grouped is the only thing that
differs between the uses:

- one image, encoded or decoded: its batches, in order (`batches`), as the header records them;
- several files or images together: all their tiles in one group (`together`), each job coding
  its own stream; allowed only where the numerics lets tiles be grouped freely
  (igc.core.numerics, `regroupable`), which is what fills a GPU.

Each step yields `Distributions`: float64 rows (`probs`), or for a model that computes integer
frequencies (numerics 2) the integer table itself (`freqs`, summing to 2**bits), handed to a coder
that takes integers as is (docs/plugins.md, "Integer frequencies").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from igc.codec.lanes import LaneStepper, lane_for, lane_pool
from igc.core.numerics import regroupable
from igc.core.protocols import BlockSteps, IntegerFrequencies
from igc.errors import ModelError

# progress(done, total): tokens coded so far and in all, called once before the first step and
# after every step (the CLI draws its progress bar from it; this layer knows nothing of rich)
Progress = Callable[[int, int], None]
TINY = np.finfo(np.float64).tiny
# positions an encoder's lanes compute per model call (Stepper): speed only, the integers are the
# same; 16 to 32 measured alike on the default model (about 2.2x one step at a time, one thread).
# A model may name its own (`block_positions`: a pixel model's 48, 16 pixels per body pass).
BLOCK = 16


class Counter:
    """Tokens done so far, passed on to a progress callback (or nowhere)."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0
        if progress:
            progress(0, total)

    def add(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)


@dataclass
class Distributions:
    """One step's next-token distributions for some tiles: float64 rows summing to 1 (`probs`),
    or integer rows, each entry >= 1, summing to 2**`bits` (`freqs`)."""

    probs: np.ndarray | None = None
    freqs: np.ndarray | None = None
    bits: int = 0

    def take(self, rows: Any) -> Distributions:
        if self.freqs is not None:
            return Distributions(freqs=self.freqs[rows], bits=self.bits)
        return Distributions(probs=self.probs[rows])

    def floats(self) -> np.ndarray:
        """The rows as float64 probabilities (integers scaled by 2**-bits: exact)."""
        if self.freqs is not None:
            return np.ldexp(self.freqs.astype(np.float64), -self.bits)
        return self.probs

    def ideal_bits(self, symbols: np.ndarray, coder: Any) -> float:
        """-sum log2 p(symbol), the model's code length: the coder's `ideal_bits` on floats; on
        integers the same sum over the picked entries (exact floats, no table converted)."""
        return self.step_bits(symbols, coder, (len(symbols),))[0]

    def step_bits(self, symbols: np.ndarray, coder: Any, ends: Any) -> list[float]:
        """`ideal_bits` of the rows of each step, rows [ends[i - 1], ends[i]) being step i's:
        each step's sum is the float a step-by-step caller gets, whatever the rows around it."""
        if self.freqs is None:
            return [coder.ideal_bits(symbols[a:b], self.probs[a:b])
                    for a, b in zip((0, *ends[:-1]), ends, strict=True)]
        picked = np.ldexp(self.freqs[np.arange(len(symbols)), symbols].astype(np.float64),
                          -self.bits)
        terms = -np.log2(np.maximum(picked, TINY))
        return [float(terms[a:b].sum()) for a, b in zip((0, *ends[:-1]), ends, strict=True)]


def frequency_bits(model: Any, numerics: int) -> int | None:
    """Bits of the integer tables the model's steps give under `numerics`, None for floats
    (a model without `frequency_bits`/`step_frequencies` always gives floats)."""
    return model.frequency_bits(numerics) if isinstance(model, IntegerFrequencies) else None


class Stepper:
    """The model states of one group's tiles, in lanes (igc.codec.lanes); `step` feeds one token
    per tile and returns every tile's `Distributions`, in tile order. The one place a faster way
    of computing a group's steps plugs in. With an `adaptation` (igc.codec.adapt) the model
    gives its head's input and logits, and the adaptation makes the frequencies.

    `known` (tiles, steps): every step's input, where all are known before stepping (an
    encoder's or an estimate's). A model that computes integer blocks (`BlockSteps`) then
    computes `block` positions per call (the model's `block_positions`, or BLOCK): the same
    integers, fewer passes over its weights and caches. The decoder, which learns each input
    from the step before, steps one at a time."""

    def __init__(self, model: Any, rows: int, lane: int, steps: int, pool: Any,
                 numerics: int, geometry: Any = None, adaptation: Any = None,
                 known: np.ndarray | None = None) -> None:
        self.bits = frequency_bits(model, numerics)
        self.adaptation, self.position = adaptation, 0
        if adaptation is not None:
            call = model.step_logits
        else:
            call = model.step_frequencies if self.bits else model.step
        blocks = (known is not None and self.bits and isinstance(model, BlockSteps)
                  and model.block_steps(numerics))
        self.known = known if blocks else None
        self.block = int(getattr(model, "block_positions", BLOCK)) if blocks else BLOCK
        if self.block < 1:
            raise ModelError(f"a model's block_positions must be at least 1, not {self.block}")
        block_call = None
        if blocks:
            block_call = model.block_logits if adaptation is not None else model.block_frequencies
        self.ahead, self.ahead_from = None, 0
        self.lanes = LaneStepper(model, rows, lane, steps, pool, numerics, call=call,
                                 geometry=geometry, block_call=block_call)

    def step(self, tokens: np.ndarray) -> Distributions:
        if (self.adaptation is not None and self.known is None and self.adaptation.kernels
                and len(self.lanes.lanes) > 1):
            # a step without known inputs (a decoder's, or any on an engine without blocks), in
            # several lanes: each lane's thread turns its logits into frequencies
            freqs = self.adaptation.begin(self.position, len(tokens))
            self.lanes.step_into(tokens, self.adaptation.fill)
            self.position += 1
            return Distributions(freqs=freqs, bits=self.bits)
        out = self._model_step(tokens)
        self.position += 1
        if self.adaptation is not None:
            freqs = self.adaptation.frequencies(self.position - 1, *out)
            return Distributions(freqs=freqs, bits=self.bits)
        return Distributions(freqs=out, bits=self.bits) if self.bits else Distributions(probs=out)

    def _model_step(self, tokens: np.ndarray) -> Any:
        if self.known is None:
            return self.lanes.step(tokens)
        t = self.position
        if not np.array_equal(tokens, self.known[:, t]):
            raise ValueError(f"step {t}: tokens other than the known inputs")
        if self.ahead is None or t - self.ahead_from >= self.block:
            self.ahead, self.ahead_from = self.lanes.block(self.known[:, t : t + self.block]), t
        i = t - self.ahead_from
        if isinstance(self.ahead, tuple):
            return tuple(np.ascontiguousarray(a[:, i]) for a in self.ahead)
        return np.ascontiguousarray(self.ahead[:, i])


class Encoding:
    """The encoder's action: code the known symbols with their distributions, summing the model
    bits. Integer tables go to a coder stream that has `encode_frequencies` as they are."""

    decodes = False

    def __init__(self, encoder: Any, coder: Any) -> None:
        self.encoder, self.coder, self.bits = encoder, coder, 0.0
        self.integers = hasattr(encoder, "encode_frequencies")
        # a stream that depends only on the sequence of symbols and rows, not on how they are
        # split into calls (`any_calls`, docs/plugins.md), takes a block of steps in one call;
        # any other gets one call per step, as its decoder will
        self.any_calls = bool(getattr(encoder, "any_calls", False))

    def __call__(self, dist: Distributions, symbols: np.ndarray,
                 ends: tuple[int, ...] | None = None) -> None:
        """Code the rows of one step, or of several (`ends`: where each step's rows end) at
        once where the stream allows (`any_calls`), one call per step otherwise; the model
        bits are summed step by step either way, the same floats in the same order."""
        ends = (len(symbols),) if ends is None else ends
        pieces = [(0, len(symbols))] if self.any_calls else zip((0, *ends[:-1]), ends, strict=True)
        for a, b in pieces:
            if dist.freqs is not None and self.integers:
                self.encoder.encode_frequencies(symbols[a:b], dist.freqs[a:b], dist.bits)
            else:
                self.encoder.encode(symbols[a:b], dist.take(slice(a, b)).floats())
        for bits in dist.step_bits(symbols, self.coder, ends):
            self.bits += bits


class Measuring:
    """An estimate's action: sum the model bits of the known symbols, coding nothing (for a
    mode whose probabilities only the stepped loop computes)."""

    decodes = False

    def __init__(self, coder: Any) -> None:
        self.coder, self.bits = coder, 0.0

    def __call__(self, dist: Distributions, symbols: np.ndarray,
                 ends: tuple[int, ...] | None = None) -> None:
        for bits in dist.step_bits(symbols, self.coder, (len(symbols),) if ends is None
                                   else ends):
            self.bits += bits


class Decoding:
    """The decoder's action: the symbols coded with these distributions."""

    decodes = True

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder
        self.integers = hasattr(decoder, "decode_frequencies")

    def __call__(self, dist: Distributions, symbols: None = None) -> np.ndarray:
        if dist.freqs is not None and self.integers:
            return self.decoder.decode_frequencies(dist.freqs, dist.bits)
        return self.decoder.decode(dist.floats())


@dataclass
class Job:
    """One image's tiles: `tokens` (known when encoding, filled in place when decoding), the
    positions that are coded, the action, and for a decoder where padding copies from."""

    tokens: np.ndarray  # (tiles, L) int64
    coded: np.ndarray  # (tiles, L) bool
    action: Encoding | Decoding
    pad_source: np.ndarray | None = None  # (tiles, L): a padding position copies this position
    # context mode 2, decoding: a context position copies this flat index of `tokens` (-1: none)
    context_source: np.ndarray | None = None
    groups: tuple[int, ...] | None = None  # mode 2: sizes of the runs of windows (waves)
    steps: int = field(init=False)  # positions to step: up to the last coded one of any tile

    def __post_init__(self) -> None:
        coded_any = self.coded.any(axis=0)
        self.steps = int(np.nonzero(coded_any)[0][-1]) + 1 if coded_any.any() else 0


@dataclass
class Part:
    """The rows `rows` of one job, inside a group."""

    job: Job
    rows: slice


@dataclass
class Group:
    """Tiles stepped together, in lanes of `lane` tiles, for `steps` positions."""

    parts: list[Part]
    lane: int
    steps: int

    @property
    def tiles(self) -> int:
        return sum(p.rows.stop - p.rows.start for p in self.parts)


def batches(job: Job, batch: int, lane: int, steps: int | None = None) -> list[Group]:
    """One image's plan: its tiles in batches of `batch`, each stepped alone, in order (what
    its header records; every batch steps the image's `steps`)."""
    n = len(job.tokens)
    steps = job.steps if steps is None else steps
    return [Group([Part(job, slice(i, min(i + batch, n)))], lane, steps)
            for i in range(0, n, batch)]


def waves(job: Job, sizes: tuple[int, ...], batch: int, lane: int) -> list[Group]:
    """Context mode 2's plan (igc.core.overlap): runs of `sizes` windows, each of which depends
    only on earlier runs, stepped one after the other in batches of at most `batch`; each batch
    split into k = max(ceil(n / lane), min(2, n)) lanes of ceil(n / k) windows (the last may be
    shorter), so that two threads share even a short anti-diagonal."""
    plan, start = [], 0
    for size in sizes:
        for first in range(start, start + size, batch):
            rows = min(batch, start + size - first)
            per_lane = -(-rows // max(-(-rows // lane), min(2, rows)))
            plan.append(Group([Part(job, slice(first, first + rows))], per_lane, job.steps))
        start += size
    if start != len(job.tokens):
        raise ValueError(f"waves of {start} windows for a job of {len(job.tokens)}")
    return plan


def together(jobs: list[Job]) -> list[Group]:
    """Several images' plan: every tile of every job in one group (regroupable numerics only)."""
    parts = [Part(job, slice(0, len(job.tokens))) for job in jobs]
    tiles = sum(len(job.tokens) for job in jobs)
    return [Group(parts, lane_for(tiles, tiles), max(job.steps for job in jobs))]


# a group on one thread steps as one lane where the numerics allows it (scripts/one_lane.py
# turns this off to measure what it saves)
ONE_LANE = True
# an encoder whose inputs are all known takes its steps a block at a time (_known_blocks);
# tests turn it off to compare with the step-by-step path
KNOWN_BLOCKS = True


def run(model: Any, numerics: int, start_token: int, plan: list[Group],
        counter: Counter | None = None, geometry: Any = None, adaptation: Any = None,
        threads: int | None = None) -> None:
    """Step every group of the plan, in order, taking each part's action at every coded
    position: the one loop of encoding and decoding. `geometry` (igc.core.types.Geometry) goes
    to the model's `start` when it takes that keyword. `adaptation` (one image's, context
    mode 1: igc.codec.adapt) corrects every step's frequencies and learns from its symbols; its
    state runs on from group to group, so the plan must be one image's batches. `threads`: the
    most threads its lanes take (default: igc.codec.lanes.thread_budget)."""
    if not plan:
        return
    if adaptation is not None and any(len(group.parts) != 1 for group in plan):
        raise ValueError("an adapted plan steps one image's batches, one part each")
    with lane_pool(max(-(-group.tiles // group.lane) for group in plan), threads) as pool:
        if adaptation is not None and pool is not None:
            adaptation.pool, adaptation.workers = pool, pool.workers
        if pool is None and regroupable(numerics) and ONE_LANE:
            # lanes only share a step between threads: on one thread a group steps as one lane,
            # one model call per step instead of one per lane, the same integers
            plan = [replace(group, lane=group.tiles) for group in plan]
        for group in plan:
            if adaptation is not None:
                adaptation.enter(group.parts[0].rows)
            _run_group(model, numerics, start_token, group, pool, counter, geometry, adaptation)


def _run_group(model: Any, numerics: int, start_token: int, group: Group, pool: Any,
               counter: Counter | None, geometry: Any = None, adaptation: Any = None) -> None:
    rows = group.tiles
    known = None
    if group.steps and not any(p.job.action.decodes for p in group.parts):
        known = np.full((rows, group.steps), start_token, np.int64)  # every step's input
        known[:, 1:] = np.concatenate([p.job.tokens[p.rows, : group.steps - 1]
                                       for p in group.parts])
    stepper = Stepper(model, rows, group.lane, group.steps, pool, numerics, geometry,
                      adaptation, known)
    if (KNOWN_BLOCKS and stepper.known is not None and len(group.parts) == 1
            and (adaptation is None or adaptation.blocks())):
        _known_blocks(stepper, adaptation, group, counter)
        return
    parts = [(p.job, p.job.tokens[p.rows], p.job.coded[p.rows],
              None if p.job.pad_source is None else p.job.pad_source[p.rows])
             for p in group.parts]
    for p in group.parts:  # context mode 2: windows read their neighbours' decoded pixels
        if p.job.context_source is not None and p.job.action.decodes:
            source = p.job.context_source[p.rows]
            known = source >= 0
            p.job.tokens[p.rows][known] = p.job.tokens.reshape(-1)[source[known]]
    bounds = np.cumsum([0] + [len(tokens) for _, tokens, _, _ in parts])
    single = len(parts) == 1
    # per part and step, worked out once: how many rows are coded (all of them takes the
    # step's rows as they are), and whether any is padding to copy (mode 2's decoder)
    counts = [coded[:, : group.steps].sum(axis=0) for _, _, coded, _ in parts]
    pads = [None if source is None else
            (~coded[:, : group.steps] & (source[:, : group.steps] >= 0)).any(axis=0)
            for _, _, coded, source in parts]
    prev = np.full(rows, start_token, dtype=np.int64)
    for t in range(group.steps):
        dist = stepper.step(prev)
        for i, (job, tokens, coded, source) in enumerate(parts):
            n = int(counts[i][t])
            if n:
                if n == len(tokens):  # every row: no mask to apply
                    mask = slice(None)
                    rows_dist = dist if single else dist.take(slice(bounds[i], bounds[i + 1]))
                else:
                    mask = coded[:, t]
                    rows_dist = dist.take(mask if single else np.flatnonzero(mask) + bounds[i])
                if job.action.decodes:
                    tokens[mask, t] = job.action(rows_dist)
                symbols = np.ascontiguousarray(tokens[mask, t])  # a copy: actions may keep it
                if not job.action.decodes:
                    job.action(rows_dist, symbols)
                if adaptation is not None:
                    adaptation.observe(mask, symbols)
                if counter is not None:
                    counter.add(n)
            if pads[i] is not None and pads[i][t]:
                # not coded, not context (mode 2): padding
                pad = ~coded[:, t] & (source[:, t] >= 0)
                tokens[pad, t] = tokens[np.flatnonzero(pad), source[pad, t]]
        prev = parts[0][1][:, t] if single else np.concatenate([p[1][:, t] for p in parts])


def _known_blocks(stepper: Stepper, adaptation: Any, group: Group,
                  counter: Counter | None) -> None:
    """An encoder's (or estimate's) group, a block of steps per call (`Stepper.block`), where
    every input is known: the model computes the block's positions; with an adaptation, its
    kernel runs the block's steps (frequencies, then learning from the coded rows, step after
    step); and the action takes the block's coded symbols at once, in step order, where its
    coder's stream does not depend on how the symbols are split into calls (igc's range
    coder), one step's at a time otherwise. The same integers and the same sequence of symbols: the same
    bytes (tests/test_loop.py). What a step costs outside the model and the adaptation's
    arithmetic is then paid per block."""
    (part,) = group.parts
    job = part.job
    tokens, coded = job.tokens[part.rows], job.coded[part.rows]
    for t0 in range(0, group.steps, stepper.block):
        t1 = min(t0 + stepper.block, group.steps)
        out = stepper.lanes.block(stepper.known[:, t0:t1])
        if adaptation is not None:
            freqs, symbols = adaptation.encode_block(t0, *out, tokens[:, t0:t1],
                                                     coded[:, t0:t1])
        else:  # (tiles, steps, V): the coded rows, step after step
            order = coded[:, t0:t1].T
            freqs, symbols = out.transpose(1, 0, 2)[order], tokens[:, t0:t1].T[order]
        if not len(symbols):
            continue
        # where each step's coded rows end, steps that code nothing left out
        ends = tuple(int(e) for e in np.unique(np.cumsum(coded[:, t0:t1].sum(axis=0))) if e)
        job.action(Distributions(freqs=freqs, bits=stepper.bits), symbols, ends)
        if counter is not None:
            counter.add(len(symbols))
