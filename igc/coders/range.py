"""Range coding with constriction.

`Categorical(perfect=False)` quantizes each distribution to fixed point with every symbol kept
above zero probability, so a symbol the model deemed nearly impossible still codes (expensively)
instead of breaking the stream. The queue variant is first-in first-out: symbols decode in the
order they were encoded, which lets the decoder interleave decoding with model steps.

Integer frequencies (a numerics-2 model's tables, each row summing to 2**bits) are taken as they
are (`encode_frequencies`, `decode_frequencies`). constriction's Python models take floats only, so
the table is handed over as its exact float64 values f * 2**-bits, and constriction maps it to its
24-bit fixed point as it maps any float table (its leaky quantization: every symbol at least 1).
That is what numerics-2 files were written with, and since the floats are exact, the map is a
function of the integers alone. A coder that used the table without that map would write other
bytes: it would be another coder, with another name in file headers.
"""

from __future__ import annotations

import numpy as np

from igc.errors import FormatError, StreamError


def ideal_bits(symbols: np.ndarray, probs: np.ndarray) -> float:
    """-sum(log2 p(symbol)): the model's code length, what an ideal coder would spend."""
    p = probs[np.arange(len(symbols)), symbols]
    return float(-np.log2(np.maximum(p, np.finfo(np.float64).tiny)).sum())


def exact_floats(freqs: np.ndarray, bits: int) -> np.ndarray:
    """Integer frequencies as float64 probabilities f * 2**-bits: exact for f < 2**53."""
    return np.ldexp(np.asarray(freqs, dtype=np.float64), -bits)


def _one_table(freqs: np.ndarray, bits: int):
    """constriction's model of one integer table, for a stream whose symbols all use it."""
    import constriction

    return constriction.stream.model.Categorical(_rows(exact_floats(freqs, bits)), perfect=False)


def _rows(probs: np.ndarray) -> np.ndarray:
    """The table as constriction must get it: float64 in C order. It misreads other layouts
    without a word (a Fortran-ordered table, which np.ldexp makes of a broadcast one, coded
    5,760 symbols in 2,024 bytes instead of 948); every table igc passes was C-ordered already
    (the test suite checked), so no file changes."""
    return np.ascontiguousarray(probs, dtype=np.float64)


class RangeEncoder:
    # a queue coder's stream is its symbols in order, however they are split into calls
    any_calls = True

    def __init__(self) -> None:
        import constriction

        self._family = constriction.stream.model.Categorical(perfect=False)
        self._encoder = constriction.stream.queue.RangeEncoder()

    def encode(self, symbols: np.ndarray, probs: np.ndarray) -> None:
        if len(symbols):
            self._encoder.encode(np.asarray(symbols, dtype=np.int32), self._family,
                                 _rows(probs))

    def encode_frequencies(self, symbols: np.ndarray, freqs: np.ndarray, bits: int) -> None:
        """Code symbol i with the integer row freqs[i] (every entry >= 1, summing to 2**bits)."""
        self.encode(symbols, exact_floats(freqs, bits))

    def encode_same(self, symbols: np.ndarray, freqs: np.ndarray, bits: int) -> None:
        """Code every symbol with the one integer table `freqs` (the bytes `encode_frequencies`
        writes with that row repeated, without an n × K table)."""
        if len(symbols):
            self._encoder.encode(np.asarray(symbols, dtype=np.int32), _one_table(freqs, bits))

    def finish(self) -> bytes:
        return self._encoder.get_compressed().astype("<u4").tobytes()


class RangeDecoder:
    def __init__(self, data: bytes) -> None:
        import constriction

        if len(data) % 4:
            raise FormatError("payload is not a whole number of 32-bit words: file truncated?")
        self._family = constriction.stream.model.Categorical(perfect=False)
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        self._decoder = constriction.stream.queue.RangeDecoder(words)

    def decode(self, probs: np.ndarray) -> np.ndarray:
        if len(probs) == 0:
            return np.zeros(0, dtype=np.int64)
        try:
            out = self._decoder.decode(self._family, _rows(probs))
        except Exception as exc:  # constriction raises on inconsistent streams
            raise StreamError(f"range decoder failed: {exc}") from None
        return np.asarray(out, dtype=np.int64)

    def decode_frequencies(self, freqs: np.ndarray, bits: int) -> np.ndarray:
        """The symbols coded with the integer rows `freqs` (as `encode_frequencies`)."""
        return self.decode(exact_floats(freqs, bits))

    def decode_same(self, count: int, freqs: np.ndarray, bits: int) -> np.ndarray:
        """`count` symbols coded with the one integer table `freqs` (as `encode_same`)."""
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        try:
            out = self._decoder.decode(_one_table(freqs, bits), count)
        except Exception as exc:  # constriction raises on inconsistent streams
            raise StreamError(f"range decoder failed: {exc}") from None
        return np.asarray(out, dtype=np.int64)


class RangeCoder:
    """constriction's 32-bit range coder (probabilities quantized to 24 bits)."""

    name = "range"
    description = "constriction queue RangeEncoder, Categorical(perfect=False), 24-bit probabilities"
    code = 1  # identifies the coder in file headers
    precision = 24

    def ideal_bits(self, symbols: np.ndarray, probs: np.ndarray) -> float:
        return ideal_bits(symbols, probs)

    def encoder(self) -> RangeEncoder:
        return RangeEncoder()

    def decoder(self, data: bytes) -> RangeDecoder:
        return RangeDecoder(data)
