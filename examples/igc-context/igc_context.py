"""An igc plugin that registers only a Model and a Coder: igc composes them into compressors.

- `context`: an adaptive context model. Each subpixel is predicted from its left, upper and
  upper-left neighbours in the tile (LOCO-I's median edge detector), corrected by the previous
  channel's error in the same pixel; the residual's frequency table is chosen by the channel, the
  local activity and that error, and it adapts to every token it sees.
- `ans`: constriction's ANS stack coder.

Install it next to igc (`pip install ./examples/igc-context`) and
`igc bench -c context,imagegpt,png --coder ans` runs both; `igc compress x.png --model context`
writes a file whose header names `context`, and `igc decompress` finds it again by that name.

Determinism is this model's duty (docs/plugins.md): encoder and decoder must compute identical
probabilities. Everything here is integer counting, and a probability is `count / total` in
float64, an IEEE division that gives the same bits on every machine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

import igc

# -- the model ------------------------------------------------------------------------------------
TILE = 16  # the tile side the subpixel tokenizer derives from a 768-token context
ACTIVITY_EDGES = (1, 3, 6, 10, 16, 26, 42)  # buckets of |left − upper-left| + |upper − upper-left|
ERROR_EDGES = (1, 3, 6, 11, 20)  # buckets of the previous channel's |error| in the same pixel
INCREMENT = 64  # added to a count after each symbol
LIMIT = 1 << 16  # a table whose total passes this is halved: recent statistics weigh more
PRIOR_PEAK = 24  # initial count of residual 0, falling by one per step away from it


def _buckets(edges: tuple[int, ...]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges), np.arange(1024), side="right")


_ACTIVITY = _buckets(ACTIVITY_EDGES)
_ERROR = _buckets(ERROR_EDGES)
N_ACTIVITY, N_ERROR = len(ACTIVITY_EDGES) + 1, len(ERROR_EDGES) + 1
N_CONTEXTS = 3 * N_ACTIVITY * N_ERROR


def _prior() -> np.ndarray:
    """Counts of each residual (value − prediction mod 256): peaked at 0, never zero."""
    signed = (np.arange(256) + 128) % 256 - 128
    return np.maximum(1, PRIOR_PEAK - np.abs(signed)).astype(np.int64)


def _geometry(tile: int, length: int) -> dict[str, np.ndarray]:
    """For each sequence position (RGB interleaved, raster order): its channel and the positions
    of its left, upper and upper-left neighbours in the same channel (-1 where outside)."""
    t = np.arange(length)
    pixel, channel = t // 3, t % 3
    row, col = pixel // tile, pixel % tile
    return {"channel": channel,
            "left": np.where(col > 0, t - 3, -1),
            "up": np.where(row > 0, t - 3 * tile, -1),
            "upleft": np.where((row > 0) & (col > 0), t - 3 * tile - 3, -1)}


@dataclass
class ContextState:
    """One lane's adaptive tables and the tokens its tiles have seen so far."""

    counts: np.ndarray  # (N_CONTEXTS, 256) int64
    totals: np.ndarray  # (N_CONTEXTS,) int64
    seen: np.ndarray  # (batch, length) int64
    position: int = 0  # the position whose distribution the next step returns
    context: np.ndarray | None = None  # tables used at the previous position
    prediction: np.ndarray | None = None  # final predictions at the previous position
    med: np.ndarray | None = None  # neighbour-only predictions at the previous position


class ContextModel:
    """Adaptive context model over each subpixel's left and upper neighbours (no weights)."""

    name = "context"  # the model id a header records; also the registered name
    description = "adaptive context model over left/upper neighbours (LOCO-I predictor)"
    vocab_size = 256
    context_length = TILE * TILE * 3
    tokenizer = "subpixel"  # it assumes RGB interleaved subpixels in raster order
    numerics = 0  # one arithmetic: integer counts, float64 division
    numerics_supported = (0,)
    parameters = 0
    # what the model computes, digested: any change to it gives files another fingerprint
    fingerprint = hashlib.sha256(repr(("context-v1", TILE, ACTIVITY_EDGES, ERROR_EDGES, INCREMENT,
                                       LIMIT, PRIOR_PEAK)).encode()).hexdigest()[:16]

    def __init__(self) -> None:
        self._geometry = _geometry(TILE, self.context_length)

    def start(self, batch: int, length: int, numerics: int) -> ContextState:
        if numerics != 0:
            raise igc.FormatError(f"the context model computes numerics 0 only, not {numerics}")
        counts = np.tile(_prior(), (N_CONTEXTS, 1))
        return ContextState(counts, counts.sum(1), np.zeros((batch, self.context_length), np.int64))

    def step(self, state: ContextState, tokens: np.ndarray) -> np.ndarray:
        t = state.position
        if t > 0:  # learn the token just fed, in the table that predicted it
            tokens = np.asarray(tokens, dtype=np.int64)
            state.seen[:, t - 1] = tokens
            symbols = (tokens - state.prediction) % 256
            np.add.at(state.counts, (state.context, symbols), INCREMENT)
            np.add.at(state.totals, state.context, INCREMENT)
            for k in np.unique(state.context[state.totals[state.context] > LIMIT]):
                state.counts[k] = (state.counts[k] + 1) >> 1
                state.totals[k] = state.counts[k].sum()
        if t >= self.context_length:
            raise igc.FormatError(f"sequence longer than the model's context of "
                                  f"{self.context_length}")
        g = self._geometry
        channel = int(g["channel"][t])
        left, up, upleft = (state.seen[:, i] if i >= 0 else None
                            for i in (g["left"][t], g["up"][t], g["upleft"][t]))
        if upleft is not None:  # median edge detector
            lo, hi = np.minimum(left, up), np.maximum(left, up)
            med = np.where(upleft >= hi, lo, np.where(upleft <= lo, hi, left + up - upleft))
            activity = _ACTIVITY[np.abs(left - upleft) + np.abs(up - upleft)]
        else:
            edge = left if left is not None else up
            med = edge if edge is not None else np.full(len(state.seen), 128, np.int64)
            activity = np.zeros(len(state.seen), np.int64)
        if channel:  # the previous channel's error in this pixel says where this one goes
            error = state.seen[:, t - 1] - state.med
            prediction = np.clip(med + error, 0, 255)
            error_bucket = _ERROR[np.minimum(np.abs(error), 1023)]
        else:
            prediction, error_bucket = med, np.zeros(len(state.seen), np.int64)
        context = (channel * N_ACTIVITY + activity) * N_ERROR + error_bucket
        state.context, state.prediction, state.med = context, prediction, med
        state.position = t + 1
        # row i, column v: the count of residual (v − prediction_i) mod 256
        columns = (np.arange(256)[None, :] - prediction[:, None]) % 256
        rows = state.counts[context[:, None], columns]
        return rows / state.totals[context][:, None]

    def log_probs(self, sequences: np.ndarray) -> np.ndarray:
        """The stepped pass itself, 16 sequences at a time (a lane's worth): adaptation makes the
        one-shot estimate a replay, so it matches the codec's bits when lanes hold 16 tiles."""
        n, length = sequences.shape
        out = np.empty((n, length, self.vocab_size), np.float32)
        for i in range(0, n, 16):
            chunk = sequences[i : i + 16]
            state = self.start(len(chunk), length, 0)
            for t in range(length):
                out[i : i + 16, t] = np.log(self.step(state, chunk[:, t]))
        return out


# -- the coder ------------------------------------------------------------------------------------
SEGMENT = 1 << 14  # symbols per ANS segment: the encoder holds their distributions until then


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


class AnsEncoder:
    """A stack coder decodes last-in first-out, but igc's decoder needs symbols in coding order
    (each distribution depends on the symbols before it). So symbols are held back and pushed in
    reverse, in independent segments of SEGMENT symbols that bound the memory held."""

    # segments are counted in symbols, not calls: the stream is the same however igc splits
    # the symbols into `encode` calls, so it may hand over several steps' at once
    any_calls = True

    def __init__(self) -> None:
        import constriction

        self._constriction = constriction
        self._family = constriction.stream.model.Categorical(perfect=False)
        self._held: list[tuple[np.ndarray, np.ndarray]] = []
        self._count = 0
        self._out = bytearray()

    def encode(self, symbols: np.ndarray, probs: np.ndarray) -> None:
        symbols = np.asarray(symbols, dtype=np.int32)
        probs = np.asarray(probs, dtype=np.float64)
        while len(symbols):
            take = min(len(symbols), SEGMENT - self._count)
            self._held.append((symbols[:take].copy(), probs[:take].copy()))
            self._count += take
            symbols, probs = symbols[take:], probs[take:]
            if self._count == SEGMENT:
                self._flush()

    def _flush(self) -> None:
        coder = self._constriction.stream.stack.AnsCoder()
        for symbols, probs in reversed(self._held):
            coder.encode_reverse(symbols, self._family, probs)
        words = coder.get_compressed().astype("<u4")
        self._out += _varint(len(words)) + words.tobytes()
        self._held.clear()
        self._count = 0

    def finish(self) -> bytes:
        if self._count:
            self._flush()
        return bytes(self._out)


class AnsDecoder:
    def __init__(self, data: bytes) -> None:
        import constriction

        self._constriction = constriction
        self._family = constriction.stream.model.Categorical(perfect=False)
        self._segments = []
        pos = 0
        while pos < len(data):
            n = shift = 0
            while True:
                if pos >= len(data) or shift > 28:
                    raise igc.FormatError("corrupted ANS stream: bad segment length")
                byte = data[pos]
                pos += 1
                n |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            if pos + 4 * n > len(data):
                raise igc.FormatError("ANS stream truncated: the file is cut short")
            self._segments.append(np.frombuffer(data, "<u4", n, pos).astype(np.uint32))
            pos += 4 * n
        self._next = 0
        self._left = 0
        self._coder = None

    def decode(self, probs: np.ndarray) -> np.ndarray:
        probs = np.asarray(probs, dtype=np.float64)
        parts, done = [], 0
        while done < len(probs):
            if not self._left:
                if self._next >= len(self._segments):
                    raise igc.FormatError("ANS stream ended early: the file is corrupted")
                self._coder = self._constriction.stream.stack.AnsCoder(self._segments[self._next])
                self._next += 1
                self._left = SEGMENT
            take = min(self._left, len(probs) - done)
            try:
                parts.append(self._coder.decode(self._family, probs[done : done + take]))
            except Exception as exc:  # constriction raises on streams it cannot read
                raise igc.FormatError(f"ANS decoder failed: {exc}") from None
            done += take
            self._left -= take
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


class AnsCoder:
    """constriction's ANS stack coder (Categorical(perfect=False), 24-bit probabilities)."""

    name = "ans"
    description = "constriction ANS stack coder, 24-bit probabilities, segments of 16384 symbols"
    precision = 24

    def ideal_bits(self, symbols: np.ndarray, probs: np.ndarray) -> float:
        p = probs[np.arange(len(symbols)), symbols]
        return float(-np.log2(np.maximum(p, np.finfo(np.float64).tiny)).sum())

    def encoder(self) -> AnsEncoder:
        return AnsEncoder()

    def decoder(self, data: bytes) -> AnsDecoder:
        return AnsDecoder(data)


# -- the hooks ------------------------------------------------------------------------------------
@igc.hookimpl
def register_models(register):
    register(ContextModel)


@igc.hookimpl
def register_coders(register):
    register(AnsCoder)



