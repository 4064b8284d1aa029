"""Context mode 3: a classical predictor's opinion on every subpixel, mixed into the adapted scores.

A model that sees one 16×16 window learns colour structure only in part: on decoded JPEGs, whose
chroma is smooth, G is nearly R moved by what G − R was at the neighbours, which a classical
codec's colour transform takes for free (docs/design.md, "Mixing with an online predictor"). Here
an online least-squares predictor reads the pixels already decoded anywhere in the image and
proposes a value; its two-sided geometric distribution around that value is mixed geometrically
into the adaptation's scores (igc.codec.adapt), as one more term per symbol:

    score(v) -= beta * |v - prediction|,   beta = slope[channel, context] / scale

* The prediction: NLMS weights per channel over W, N, NW, NE, W + N − NW and MED of the channel,
  and for G and B the four neighbours moved by the previous channel's difference at this pixel
  (W + (X′ − W′), ...), around the features' mean. Missing neighbours fall back W → N →
  128.
* The context: one of 12 levels of local activity (|W − NW| + |N − NW| + |N − NE|, plus twice
  the previous channel's error at this pixel).
* The scale: the mean |error| seen in the channel and context (counts halved past 256).
* The slope: learned per channel and context by the gradient of the code length, as the
  adaptation's temperature is; it starts at 0, so the expert earns its weight.

The state is zero at the image's start and moves once per coding step, by the sum of the step's
updates (every row of a step is a different window, so none reads another's pixel). All integer:
predictions, errors and scales in Q4 pixels, weights and slopes Q16, divisions floored or rounded
half up. The constants and the NumPy definition are in igc/engines/expert.py (they are part of
the mode's definition: docs/format.md, "Context mode 3"); igc/engines/expert_cpu.py computes
the same integers with numba (tests/test_expert.py holds them equal).
"""

from __future__ import annotations

import numpy as np

from igc.engines import expert as rules

MODE = 3
VOCAB = rules.VOCAB  # it predicts 8-bit subpixels: models of 256 symbols


class OnlinePredictor:
    """One image's predictor: its decoded pixels and learned state. The adaptation calls
    `enter(windows)` when a group starts, `prepare(step)` before its frequencies and
    `observe(rows, symbols, freqs)` once the step's symbols are known."""

    def __init__(self, height: int, width: int, by_step: np.ndarray, fast: bool = True) -> None:
        self.kernels = _kernels() if fast else None
        self.height, self.width = height, width
        # (L, windows) int32: the flat index of the subpixel each window codes at each step,
        # or -1 (igc.core.overlap.OverlapTiling.pixels)
        self.by_step = by_step
        self.image = np.full(height * width * rules.CHANNELS, -1, np.int16)  # -1: not yet decoded
        self.error = np.zeros(height * width * rules.CHANNELS, np.int16)  # last error, Q4
        self.weights = np.zeros((rules.CHANNELS, rules.FEATURES), np.int64)
        self.mag = np.full((rules.CHANNELS, rules.CONTEXTS), rules.MAG_START, np.int64)
        self.count = np.ones((rules.CHANNELS, rules.CONTEXTS), np.int64)
        self.slope = np.zeros((rules.CHANNELS, rules.CONTEXTS), np.int64)
        self.windows = slice(0, 0)
        self.step = None  # (pixel index, features, n, context, scale, prediction, beta)
        self._out = rules.empty(0)

    def enter(self, windows: slice) -> None:
        """The windows (rows of the image's layout) the next steps code."""
        self.windows = windows

    def prepare(self, step: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Each of the step's `rows` rows' prediction (Q4) and slope over scale `beta` (0 for a
        row whose position is not coded: context or padding)."""
        at = self.at(step, rows)
        state = (self.image, self.error, self.height, self.width, self.weights, self.mag,
                 self.count, self.slope)
        if self.kernels is not None:
            out = self.scratch(rows)  # kept from step to step: a step allocates nothing
            self.kernels.prepare(at, *state, *out)
        else:
            out = rules.prepare(at, *state)
        self.step = (at, *out)
        return out[-2], out[-1]

    def at(self, step: int, rows: int) -> np.ndarray:
        """The pixel each of the step's `rows` rows codes (-1: none), as `prepare` reads it."""
        at = self.by_step[step, self.windows]
        if len(at) != rows:
            raise ValueError(f"a step of {rows} rows in a group of {len(at)} windows")
        return at

    def at_block(self, step: int, steps: int, rows: int) -> np.ndarray:
        """`at` of `steps` steps from `step`, (steps, rows)."""
        at = np.ascontiguousarray(self.by_step[step : step + steps, self.windows])
        if at.shape != (steps, rows):
            raise ValueError(f"a step of {rows} rows in a group of {at.shape[1]} windows")
        return at

    def scratch(self, rows: int) -> tuple[np.ndarray, ...]:
        """prepare's output arrays for a step of `rows` rows (features, n, context, scale,
        prediction, beta), kept from step to step."""
        if len(self._out[1]) < rows:
            self._out = rules.empty(rows)
        return tuple(a[:rows] for a in self._out)

    def observe(self, rows: np.ndarray, symbols: np.ndarray, freqs: np.ndarray) -> None:
        """Learn from the symbols coded at the step's rows `rows` (int64 indices) with the
        step's frequencies `freqs` (rows, 256), and record the pixels."""
        at, feats, n, ctx, scale, pred, _ = self.step
        if (at[rows] < 0).any():
            raise ValueError("symbols observed at positions the window layout does not code")
        args = (rows, np.asarray(symbols, np.int64), freqs, at, feats, n, ctx, scale, pred,
                self.image, self.error, self.weights, self.mag, self.count, self.slope)
        (self.kernels.observe if self.kernels is not None else rules.observe)(*args)


def _kernels():
    """igc.engines.expert_cpu (numba), or None where numba is missing (the NumPy rules then)."""
    try:
        from igc.engines import expert_cpu
    except ImportError:
        return None
    return expert_cpu
