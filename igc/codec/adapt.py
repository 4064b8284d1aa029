"""Context mode 1: the model's distributions adapted to the image as it is coded, bit for bit.

A model trained on many photographs is not tuned to the one being coded. Here the decoder learns
from the tiles it has already decoded, exactly as the encoder did, so nothing is transmitted
(docs/design.md, "Per-image adaptation", has the measurements that chose this scheme). Three
corrections are added to the model's scores before they become frequencies:

* a *temperature* per class: the model's log2-probabilities scaled by 1 + a;
* a *calibration* curve per class (secondary estimation): a piecewise-linear function of the
  model's own -log2 p, knots at 0, 1, ..., 16 bits;
* an *online output head* per class: U·[h, 1] on the head's input h, trained by normalized LMS
  (the step divided by |[h, 1]|²): per-image fine-tuning of the last layer.

The class of a position is its index mod 3 (the channel, for RGB subpixels). All tiles of a
step share it. The state is zero at the image's start and runs on across its batches. After each
step the decoder knows every symbol of the step, and each part moves by the step's mean gradient
of the code length. So every prediction uses only symbols of earlier steps.

Everything is integer arithmetic with fixed rules: NumPy int64, plus float64 products whose
every partial sum is an integer below 2**53, so exact in any order (as for the model's own
products, igc/engines/integer.py). The engines give the same head input and logits bit for bit,
so a file decodes with any engine, thread count or lane split, on any machine. The constants
below are part of the mode's definition: changing one is a new mode.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from functools import lru_cache
from itertools import pairwise

import numpy as np

from igc.codec import expert
from igc.core.protocols import HeadLogits
from igc.engines.integer import (
    FX,
    SCORE_FRAC,
    SCORE_LIM,
    TOTAL_BITS,
    bit_length,
    exp2_neg,
    frequencies,
    round_div,
    shift_round,
)
from igc.errors import ModelError

MODE = 1
# context modes whose model adapts to the image (mode 2 also overlaps tiles, mode 3 adds a
# classical predictor's term: igc.codec.expert)
ADAPTED = (1, 2, 3, 4)
TUNED = 4  # context mode 4: adapted as mode 3, with a model derived from the file (codec.tuned)
# mode 2 divides a step's gradient sums by at least this many rows: its anti-diagonals can be a
# handful of windows, whose mean gradient is noisy (on two Kodak crops, mode 2's bits with 1, 8,
# 32 and 64 here: +1.8%, 0, -0.6%, -0.5% against 8; docs/design.md, scripts/overlap_measure.py)
MIN_ROWS_OVERLAP = 32
Q = SCORE_FRAC  # scores in Q12 log2 units
CLASSES = 3  # position mod 3
U_CLAMP = 32 << Q  # -log2 p beyond 32 bits counts as 32 (the coder's floor is 24)
KNOTS = 17  # calibration knots at 0..16 bits of -log2 p
A_FRAC, A_MIN, A_MAX = 24, -(3 << 22), 3 << 24  # temperature a in [-0.75, 3], Q24
G_FRAC, G_MAX = 24, 16 << 24  # knot values in log2 units, Q24, within +-16 bits
U_FRAC, U_MAX = 25, (1 << 29) - 1  # head weights, Q25; |U| < 2**29 keeps U·h exact
Q_SHIFT = 20  # fraction bits of the NLMS-scaled residual
ROWS_EXACT = 4096  # rows per float64 product of the head's gradient (sums stay below 2**53)
SUM_LIM = 1 << 52  # a step's summed gradients saturate here (no int64 overflow)
MAX_CHANNELS = 511  # wider heads would break the 2**53 bound of U·h
MAX_ROWS = 1 << 16  # tiles per step: every sum of a step's gradients then fits int64 exactly
MAX_PARTS = 16  # row parts a step splits into across threads (each holds a head gradient)
# learning rates as (numerator, shift): lr = numerator / 2**shift, per step's mean gradient;
# tuned on McMaster photographs (training data) at batches of 32 (docs/design.md)
LR_TEMP = (5, 9)  # 0.0098
LR_CALIB = (37, 9)  # 0.072
LR_HEAD = (277, 7)  # 2.16


@lru_cache(maxsize=1)
def log2_table() -> np.ndarray:
    """LOG2[i] = round(4096 * log2(1 + i/4096)), i = 0..4095, by correctly rounded decimals."""
    with localcontext() as ctx:
        ctx.prec = 34
        ln2, base = Decimal(2).ln(), Decimal(4096).ln()
        return np.array([int(((Decimal(4096 + i).ln() - base) / ln2 * 4096).to_integral_value())
                         for i in range(4096)], np.int64)


def log2_q12(v: np.ndarray) -> np.ndarray:
    """log2(v) in Q12 of integers v >= 1: 4096 (bit_length(v) - 1) plus LOG2 at the 12 bits
    after the leading one (truncated)."""
    v = np.asarray(v, np.int64)
    n = bit_length(v) - 1
    mant = np.where(n >= 12, v >> np.maximum(n - 12, 0), v << np.maximum(12 - n, 0))
    return (n << Q) + log2_table()[mant - 4096]


def _mean_step(total: np.ndarray, lr: tuple[int, int], count: int, shift: int) -> np.ndarray:
    """round(lr * total / (count * 2**shift)), with `total` saturated first."""
    num, lr_shift = lr
    total = np.clip(total, -SUM_LIM, SUM_LIM) * num
    return round_div(total, np.int64(count) << (lr_shift + shift))


class _NoPredictor:
    """What the kernels read in place of context mode 3's predictor in the other modes: a
    prediction and a slope of 0 for every row, so that its term is 0, and a state that is
    never read."""

    def __init__(self) -> None:
        self.image = self.error = np.zeros(1, np.int16)
        self.height = self.width = 0
        self.weights = self.mag = self.count = self.slope = np.zeros((1, 1), np.int64)
        self.step: tuple | None = None
        self._zeros = np.zeros(0, np.int64)
        self._feats = np.zeros((0, 1), np.int64)

    def at(self, step: int, rows: int) -> np.ndarray:
        return np.zeros(rows, np.int32)

    def at_block(self, step: int, steps: int, rows: int) -> np.ndarray:
        return np.zeros((steps, rows), np.int32)

    def prepare(self, step: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        self.step = (self.at(step, rows), *self.scratch(rows))
        return self.step[-2], self.step[-1]

    def scratch(self, rows: int) -> tuple[np.ndarray, ...]:
        if len(self._zeros) < rows:  # prepare's outputs, all zeros: never written
            self._zeros, self._feats = np.zeros(rows, np.int64), np.zeros((rows, 1), np.int64)
        zeros = self._zeros[:rows]
        return (self._feats[:rows], zeros, zeros, zeros, zeros, zeros)


class OnlineAdaptation:
    """The adapted frequencies of one image's steps, and the state they are learned into.

    Per step: `frequencies(step, hidden, logits)` for every tile stepped (or `begin`, then
    `fill` by row slices from the lanes' threads), then `observe(rows, symbols)` with the
    symbols coded at the rows that were coded."""

    def __init__(self, channels: int, vocab: int, norm_frac: int, fast: bool = True,
                 min_rows: int = 1, predictor: expert.OnlinePredictor | None = None) -> None:
        self.kernels = _kernels() if fast else None  # None: the NumPy definition below
        # context mode 3: the classical predictor whose term joins the scores (igc.codec.expert)
        self.expert = predictor
        self._predictor = predictor if predictor is not None else _NoPredictor()
        # threads for the kernels (the codec loop's lane pool): rows split into one part per
        # worker; integer sums make the split invisible in the results
        self.pool, self.workers = None, 1
        if channels > MAX_CHANNELS:
            raise ModelError(f"context mode {MODE} adapts models of at most {MAX_CHANNELS} "
                             f"channels, not {channels}")
        self.vocab, self.norm_frac = vocab, norm_frac
        # a step's gradient sum is divided by max(rows coded, min_rows): mode 2's short
        # anti-diagonals then move the state by as much per symbol as a full batch does
        self.min_rows = min_rows
        self.temp = np.zeros(CLASSES, np.int64)
        self.calib = np.zeros((CLASSES, KNOTS), np.int64)
        self.head = np.zeros((CLASSES, vocab, channels + 1), np.int64)
        self._pending: tuple | None = None
        # the kernels' per-step arrays, kept from step to step (a step allocates only its
        # frequencies): a step's Python costs as much as its arithmetic at mode 2's small batches
        self._scratch: tuple = ()
        self._fill: tuple = ()
        self._grad_g = np.zeros(KNOTS, np.int64)
        head_shift = LR_HEAD[1] + TOTAL_BITS + Q_SHIFT - U_FRAC - norm_frac
        self._rates = np.array([[LR_TEMP[0], LR_TEMP[1] + Q], [LR_CALIB[0], LR_CALIB[1] + Q],
                                [LR_HEAD[0], head_shift]], np.int64)
        self._bounds = np.array([[A_MIN, A_MAX], [-G_MAX, G_MAX], [-U_MAX, U_MAX]], np.int64)

    def frequencies(self, step: int, hidden: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """(B, V) frequencies, each >= 1, summing to 2**24, of the adapted scores of rows with
        head input `hidden` ((B, C), `norm_frac` fraction bits) and Q16 `logits` (B, V)."""
        c = step % CLASSES
        rows = len(logits)
        if self.kernels is not None and self._parts(rows) <= 1:
            # one kernel call: the expert's terms, then the adapted frequencies
            self._check(rows, hidden, logits, self.head.shape[2])
            h1, head, u, j, w = self._buffers(rows, self.vocab, self.head.shape[2])
            f = np.empty((rows, self.vocab), np.int64)
            e = self._predictor
            at = e.at(step, rows)
            self.kernels.frequencies_step(
                np.ascontiguousarray(hidden, np.int64), np.int64(1 << self.norm_frac),
                np.ascontiguousarray(logits, np.int64), self.head[c], self.temp[c],
                self.calib[c], U_FRAC + self.norm_frac - Q, U_CLAMP, log2_table(),
                *self._prepare_args(at, rows), h1, head, u, j, w, f)
            e.step = (at, *e.scratch(rows))  # what the predictor's update reads
            self._pending = (c, u, j, w, h1, f)
            return f
        if self.kernels is not None:
            f = self.begin(step, rows)
            self._each(lambda r: self.fill(r, hidden[r], logits[r]), rows)
            return f
        h1 = np.concatenate([hidden, np.full((len(hidden), 1), 1 << self.norm_frac)], axis=1)
        head = (h1.astype(np.float64) @ self.head[c].T.astype(np.float64)).astype(np.int64)
        z = shift_round(logits.max(axis=-1, keepdims=True) - logits, FX - Q, SCORE_LIM)
        total = exp2_neg(z).sum(axis=-1, keepdims=True)  # >= 2**30: the largest term is 2**30
        u = np.minimum(z + log2_q12(total) - (30 << Q), U_CLAMP)  # -log2 p, Q12
        knot = np.minimum(u, (KNOTS - 1) << Q)
        j = np.minimum(knot >> Q, KNOTS - 2)
        w = knot - (j << Q)  # 0..4096
        g = self.calib[c]
        score = -u + ((self.temp[c] * -u) >> A_FRAC)
        score += (g[j] * ((1 << Q) - w) + g[j + 1] * w) >> (G_FRAC + Q - Q)
        score += head >> (U_FRAC + self.norm_frac - Q)
        pred, beta = self._expert_terms(step, len(logits))
        score -= (beta[:, None] * np.abs((np.arange(self.vocab) << 4)[None, :] - pred[:, None])
                  ) >> 12
        f = frequencies(score << (FX - Q))
        self._pending = (c, u, j, w, h1, f)
        return f

    def begin(self, step: int, rows: int) -> np.ndarray:
        """Start a step of `rows` rows whose frequencies the caller's threads fill by row
        slices (`fill`, the kernels only): the (rows, V) array they fill. The state is read
        here, after the last step's `observe`."""
        c = step % CLASSES
        h1, head, u, j, w = self._buffers(rows, self.vocab, self.head.shape[2])
        f = np.empty((rows, self.vocab), np.int64)
        self._pending = (c, u, j, w, h1, f)
        self._fill = (np.int64(1 << self.norm_frac), self.head[c], self.temp[c], self.calib[c],
                      U_FRAC + self.norm_frac - Q, U_CLAMP, log2_table(),
                      *self._expert_terms(step, rows), h1, head, u, j, w, f)
        return f

    def enter(self, windows: slice) -> None:
        """The rows of the image's layout that the next steps code (the loop says so at each
        group's start; only mode 3's expert, which reads pixels by window, needs to know)."""
        if self.expert is not None:
            self.expert.enter(windows)

    def _expert_terms(self, step: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Each row's expert prediction (Q4) and slope over scale: zeros without an expert."""
        return self._predictor.prepare(step, rows)

    def fill(self, rows: slice, hidden: np.ndarray, logits: np.ndarray) -> None:
        """The adapted frequencies of the step's rows `rows`, from their head input (int64,
        C-contiguous) and logits: any row slices, in any order or thread."""
        one, weights, temp, calib, shift, clamp, table, *out = self._fill
        self._check(len(range(*rows.indices(len(out[-1])))), hidden, logits, weights.shape[1])
        self.kernels.adapted(np.ascontiguousarray(hidden, np.int64), one,
                             np.ascontiguousarray(logits, np.int64), weights, temp, calib, shift,
                             clamp, table, *(a[rows] for a in out))

    def _check(self, n: int, hidden: np.ndarray, logits: np.ndarray, inputs: int) -> None:
        """Refuse a step whose head inputs or logits do not fit the head: the kernels write
        [h, 1] into a buffer of the head's width, unchecked."""
        if np.shape(hidden) != (n, inputs - 1) or np.shape(logits) != (n, self.vocab):
            raise ModelError(f"an adapted step of {n} rows got head inputs of shape "
                             f"{np.shape(hidden)} and logits of shape {np.shape(logits)}; the "
                             f"head takes {inputs - 1} channels and {self.vocab} symbols: the "
                             "model's step_logits and head_shape disagree")

    def _prepare_args(self, at: np.ndarray, rows: int) -> tuple:
        """The kernels' arguments for context mode 3's predictor before a step: whether there
        is one, the pixel of each row (`at`: of a step, or (steps, rows) of a block), its
        state and prepare's outputs (`_NoPredictor`'s where there is none)."""
        e = self._predictor
        return (self.expert is not None, at, e.image, e.error, e.height, e.width, e.weights,
                e.mag, e.count, e.slope, *e.scratch(rows))

    def _observe_args(self) -> tuple:
        """The kernels' arguments for the predictor's update after the step `frequencies`
        prepared."""
        e = self._predictor
        at, feats, n, ctx, scale, pred, _ = e.step
        return (self.expert is not None, at, feats, n, ctx, scale, pred, e.image, e.error,
                e.weights, e.mag, e.count, e.slope)

    def observe(self, rows: np.ndarray | slice, symbols: np.ndarray) -> None:
        """Learn from the symbols coded at `rows` (a mask or indices of the last step's rows,
        or slice(None): all of them)."""
        c, u, j, w, h1, f = self._pending
        self._pending = None
        symbols = np.asarray(symbols, np.int64)
        count = len(symbols)
        if count == 0:
            return
        index = self._index(rows, len(f))
        k = self.kernels
        state = (self.temp[c : c + 1], self.calib[c], self.head[c].reshape(-1))
        limits = (self._rates, max(count, self.min_rows), SUM_LIM, self._bounds)
        if k is not None and self._parts(count) <= 1:
            # one kernel call: the expert learns and records the pixels, then the rest
            k.observe_step(index, symbols, f, u, j, w, h1, Q_SHIFT, self._grad_g, *state,
                           *limits, *self._observe_args())
            return
        if self.expert is not None:
            self.expert.observe(index, symbols, f)
        if k is not None:
            sums = []

            def part(at: slice) -> None:
                grad_g = np.zeros(KNOTS, np.int64)
                grad_u = np.zeros(self.head[c].shape, np.int64)
                grad_a = k.gradients(index[at], symbols[at], f, u, j, w, h1, Q_SHIFT, grad_g,
                                     grad_u)
                sums.append((grad_a, grad_g, grad_u))

            self._each(part, count)
            grad_a = np.array([sum(x[0] for x in sums)], np.int64)
            grad_g, grad_u = sums[0][1], sums[0][2]
            for _, more_g, more_u in sums[1:]:
                grad_g += more_g
                grad_u += more_u
            k.learn_all(*state, grad_a, grad_g, grad_u.reshape(-1), *limits)
            return
        u, j, w, h1, f = u[rows], j[rows], w[rows], h1[rows], f[rows]
        r = -f
        r[np.arange(count), symbols] += 1 << TOTAL_BITS  # 2**24 [k = x] - f'_k: sums to 0
        grad_a = (r * -u).sum()  # temperature: d score / d a = -u
        grad_g = np.zeros(KNOTS, np.int64)  # calibration: each knot's interpolation weight
        lower, upper = r * ((1 << Q) - w), r * w
        for k in range(KNOTS - 1):
            at = j == k
            grad_g[k] += lower[at].sum()
            grad_g[k + 1] += upper[at].sum()
        # online head, NLMS: r * 2**Q_SHIFT / |[h, 1]|^2, times [h, 1] below
        norm = (h1 * h1).sum(axis=1, keepdims=True)
        self._learn(c, grad_a, grad_g, round_div(r << Q_SHIFT, norm).astype(np.float64), h1,
                    count, max(count, self.min_rows))

    def blocks(self) -> bool:
        """Whether an encoder's steps can run through `encode_block`: where the kernels are.
        The block's steps run on one thread even where a step's rows would be split across
        threads, and still faster: a 256x256 crop in mode 1 (steps of 32 rows) encodes in 7.0
        to 7.4 s against 8.4 to 9.1 s on two threads (docs/speed.md)."""
        return self.kernels is not None

    def encode_block(self, step: int, hidden: np.ndarray, logits: np.ndarray,
                     symbols: np.ndarray, coded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An encoder's steps `step` .. `step` + P - 1 in one kernel call, every input known:
        what `frequencies` then `observe` of the coded rows do at each of them, on the same
        state. hidden (B, P, C), logits (B, P, V) (the model's block), symbols (B, P) and
        coded (B, P) bool -> the coded rows' frequencies and symbols, in step order."""
        rows, steps = coded.shape
        h1, head, u, j, w = self._buffers(rows, self.vocab, self.head.shape[2])
        f = np.empty((rows, self.vocab), np.int64)
        out_f = np.empty((rows * steps, self.vocab), np.int64)
        out_s = np.empty(rows * steps, np.int64)
        expert_state = self._prepare_args(self._predictor.at_block(step, steps, rows), rows)
        k = self.kernels.encode_block(
            step, hidden, logits, np.ascontiguousarray(symbols, np.int64),
            np.ascontiguousarray(coded, np.bool_), np.int64(1 << self.norm_frac), self.temp,
            self.calib, self.head, U_FRAC + self.norm_frac - Q, U_CLAMP, log2_table(), Q_SHIFT,
            self._rates, self.min_rows, SUM_LIM, self._bounds, *expert_state, h1, head, u, j,
            w, f, self._grad_g, out_f, out_s)
        return out_f[:k], out_s[:k]

    def _index(self, rows: np.ndarray | slice, total: int) -> np.ndarray:
        """`observe`'s rows (a mask, indices or a slice of a step of `total` rows) as int64
        indices."""
        if isinstance(rows, slice):
            return np.arange(*rows.indices(total), dtype=np.int64)
        rows = np.asarray(rows)
        return (np.flatnonzero(rows) if rows.dtype == bool else rows).astype(np.int64)

    def _parts(self, rows: int) -> int:
        """How many parts `_each` splits `rows` rows into: one per pool worker, each of at
        least 8 rows."""
        return min(self.workers, rows // 8, MAX_PARTS) if self.pool is not None else 1

    def _buffers(self, rows: int, vocab: int, inputs: int) -> tuple:
        """The kernels' arrays of a step of `rows` rows: h1 (rows, inputs), then the head's
        product, u, j and w (rows, vocab), all int64; grown when a step has more rows."""
        if not self._scratch or len(self._scratch[0]) < rows:
            self._scratch = (np.empty((rows, inputs), np.int64),
                             *(np.empty((rows, vocab), np.int64) for _ in range(4)))
        return tuple(a[:rows] for a in self._scratch)

    def _each(self, part, rows: int) -> None:
        """part(rows slice) over `rows` rows, split over the pool's workers (parts of at least
        8 rows), or in one call."""
        parts = self._parts(rows)
        if parts <= 1:
            part(slice(0, rows))
            return
        bounds = [rows * i // parts for i in range(parts + 1)]
        for done in [self.pool.submit(part, slice(a, b)) for a, b in pairwise(bounds)]:
            done.result()

    def _learn(self, c: int, grad_a, grad_g: np.ndarray, scaled: np.ndarray, h1: np.ndarray,
               count: int, divisor: int) -> None:
        """Move class c's state by the step's mean gradients (summed over `count` rows); the
        head's gradient is scaled.T @ h1."""
        self.temp[c] = np.clip(self.temp[c] + _mean_step(grad_a, LR_TEMP, divisor, Q), A_MIN,
                               A_MAX)
        self.calib[c] = np.clip(self.calib[c] + _mean_step(grad_g, LR_CALIB, divisor, Q), -G_MAX,
                                G_MAX)
        grad_u = np.zeros(self.head[c].shape, np.int64)
        for i in range(0, count, ROWS_EXACT):
            part = slice(i, i + ROWS_EXACT)
            grad_u += (scaled[part].T @ h1[part].astype(np.float64)).astype(np.int64)
        shift = TOTAL_BITS + Q_SHIFT - U_FRAC - self.norm_frac
        self.head[c] = np.clip(self.head[c] + _mean_step(grad_u, LR_HEAD, divisor, shift), -U_MAX,
                               U_MAX)


def state_bytes(rows: int, channels: int, vocab: int) -> int:
    """Memory of an adaptation stepping `rows` tiles: its state (int64, and the float64 copy of
    one class's head a step makes) and a step's arrays (logits, hidden, u, j, w, frequencies,
    head product and scaled residuals per row)."""
    inputs = channels + 1
    return 8 * (CLASSES * (vocab * inputs + KNOTS + 1) + (2 + MAX_PARTS) * vocab * inputs
                + rows * (8 * vocab + 3 * inputs))


def _kernels():
    """igc.engines.adapt_cpu (numba), or None where numba is missing (the NumPy rules then)."""
    try:
        from igc.engines import adapt_cpu
    except ImportError:
        return None
    return adapt_cpu


def head_of(model, numerics: int) -> tuple[int, int, int] | None:
    """The head shape an adaptation needs, or None if `model` cannot give its logits under
    `numerics` (or is too wide for the mode's exact products)."""
    shape = model.head_shape(numerics) if isinstance(model, HeadLogits) else None
    return shape if shape is not None and shape[0] <= MAX_CHANNELS else None


def adaptation_for(model, numerics: int, mode: int, pixels: np.ndarray | None = None,
                   shape: tuple[int, int] | None = None) -> OnlineAdaptation | None:
    """A fresh adaptation for one image coded in context mode `mode` (None for mode 0); mode 3
    needs the layout's `pixels` (igc.core.overlap.OverlapTiling.pixels) and the image's
    (height, width) `shape` for its predictor."""
    if mode == 0:
        return None
    if mode == TUNED:  # its file is mode 3's of a derived model: igc.codec.tuned codes it
        raise ModelError(f"context mode {TUNED} codes through mode 3 with the model tuned to the "
                         "image (igc.codec.tuned); its tokens are not stepped as mode 4")
    head = head_of(model, numerics)
    if mode not in ADAPTED or head is None:
        raise ModelError(f"context mode {mode} needs a model whose numerics-2 head it can adapt "
                         f"(an ImageGPT model of at most {MAX_CHANNELS} channels); "
                         f"{getattr(model, 'name', 'this model')!r} under numerics {numerics} "
                         "has none")
    predictor = None
    if mode == expert.MODE:
        if head[1] != expert.VOCAB:
            raise ModelError(f"context mode {mode} predicts 8-bit subpixels: a model of "
                             f"{expert.VOCAB} symbols, not {head[1]}")
        if pixels is None or shape is None:
            raise ValueError(f"context mode {mode} needs the layout's pixels and the image shape")
        predictor = expert.OnlinePredictor(*shape, pixels)
    return OnlineAdaptation(*head, min_rows=1 if mode == MODE else MIN_ROWS_OVERLAP,
                            predictor=predictor)
