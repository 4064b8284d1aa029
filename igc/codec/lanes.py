"""Stepping the tiles of a batch in lanes, on several threads, without changing a single float.

The codec's rule is that encoder and decoder compute identical probabilities, and BLAS kernels
split their work differently with different thread counts. So every model operation runs on one
thread; what runs in parallel are *lanes*: fixed groups of tiles whose arithmetic is independent
of each other. How a batch splits into lanes depends only on the file (its header stores the lane
size), never on the machine, so a file encoded on one core decodes on sixteen and vice versa.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

from igc.core.protocols import BatchedEngine

MAX_LANE = 16  # tiles per lane: larger lanes amortise each step's fixed cost on big images
# tiles a GPU engine steps as one state (its memory grows with them), and so the most tiles of an
# image a GPU encoder puts in one batch
GPU_TILES = 4096


def lane_size(tiles: int) -> int:
    """Tiles per lane for a batch of `tiles`: two lanes or more, so that two cores share even a
    small image, and at most MAX_LANE tiles each."""
    return max(1, min(MAX_LANE, -(-tiles // 2)))


def lane_for(tiles: int, batch: int, lane: int | None = None) -> int:
    """Tiles per lane for an image of `tiles` tiles coded in batches of `batch` (`lane` forces
    one); the header records the result."""
    return min(lane or lane_size(min(batch, tiles)), batch)


def split(rows: int, lane: int) -> list[slice]:
    return [slice(i, min(i + lane, rows)) for i in range(0, rows, lane)]


def _torch():
    return sys.modules.get("torch")  # models that need torch have imported it; others don't


def one_thread_here() -> None:
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(1)  # OpenMP's thread count is per thread: set it in each worker


def thread_budget() -> int:
    """Threads a codec may use: torch's count (what `igc.api.set_threads` and `--threads` set),
    1 where torch was never imported."""
    torch = _torch()
    return torch.get_num_threads() if torch is not None else 1


@contextmanager
def lane_pool(lanes: int, threads: int | None = None) -> Iterator[Executor | None]:
    """Threads for `lanes` lanes (at most `threads`, by default torch's thread count), every
    torch operation on one thread meanwhile. None when one thread will do."""
    torch = _torch()
    previous = torch.get_num_threads() if torch is not None else 1
    if threads is None:
        threads = previous
    if previous != 1:
        torch.set_num_threads(1)
    try:
        workers = min(threads, lanes)
        if workers <= 1:
            yield None
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="igc-lane",
                                    initializer=one_thread_here) as pool:
                pool.workers = workers  # for work split by thread rather than by lane
                yield pool
    finally:
        if previous != 1:
            torch.set_num_threads(previous)


def start_state(model, rows: int, steps: int, numerics: int, geometry=None):
    """`model.start(rows, steps, numerics)`, with `geometry=` (igc.core.types.Geometry) when the
    model's `start` takes that keyword."""
    if geometry is not None:
        try:
            params = inspect.signature(model.start).parameters
        except (TypeError, ValueError):
            params = {}
        if "geometry" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return model.start(rows, steps, numerics, geometry=geometry)
    return model.start(rows, steps, numerics)


class LaneStepper:
    """Model states for the lanes of one batch; `step` feeds one token per tile and returns the
    next-token distributions of all tiles, in tile order (`call(state, tokens)` of each lane:
    the model's `step`, or its `step_frequencies` for integer tables). `block` feeds several
    known tokens per tile through `block_call` (the model's `block_frequencies` or
    `block_logits`), the results with a positions axis after the tiles'."""

    def __init__(self, model, rows: int, lane: int, steps: int, pool: Executor | None,
                 numerics: int = 0, call: Callable[[Any, np.ndarray], np.ndarray] | None = None,
                 geometry=None, block_call: Callable | None = None) -> None:
        self.model = model
        self.call, self.block_call = call or model.step, block_call
        if isinstance(model, BatchedEngine) and model.batched_engine(numerics):
            lane = min(rows, GPU_TILES)  # a GPU engine steps the whole batch as one state
        self.lanes = split(rows, lane)
        self.states = [start_state(model, sl.stop - sl.start, steps, numerics, geometry)
                       for sl in self.lanes]
        self.pool = pool if len(self.lanes) > 1 else None

    def step(self, tokens: np.ndarray) -> np.ndarray:
        return self._each(self.call, tokens)

    def step_into(self, tokens: np.ndarray, finish: Callable[..., None]) -> None:
        """`step`, each lane's result handed on in its own thread as finish(rows slice,
        *result) (an adaptation filling its frequencies, igc.codec.adapt), rather than joined
        into one array on the calling thread; returns when every lane is done."""
        def lane(state: Any, rows: slice) -> None:
            finish(rows, *self.call(state, tokens[rows]))

        if self.pool is None:
            for st, sl in zip(self.states, self.lanes, strict=True):
                lane(st, sl)
            return
        for done in [self.pool.submit(lane, st, sl)
                     for st, sl in zip(self.states, self.lanes, strict=True)]:
            done.result()

    def block(self, tokens: np.ndarray) -> np.ndarray:
        return self._each(self.block_call, tokens)

    def _each(self, call: Callable, tokens: np.ndarray) -> np.ndarray:
        """`call` on every lane's state and tokens (on the pool's threads), joined."""
        if self.pool is None:
            parts = [call(st, tokens[sl]) for st, sl in zip(self.states, self.lanes,
                                                            strict=True)]
        else:
            futures = [self.pool.submit(call, st, tokens[sl])
                       for st, sl in zip(self.states, self.lanes, strict=True)]
            parts = [f.result() for f in futures]
        if len(parts) == 1:
            return parts[0]
        if isinstance(parts[0], tuple):  # several arrays per step (`step_logits`)
            return tuple(np.concatenate(column) for column in zip(*parts, strict=True))
        return np.concatenate(parts)
