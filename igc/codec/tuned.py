"""Context mode 4: mode 3 with the model tuned to the image, the tuning sent in the file.

The encoder tunes the model's norms and biases on the image (igc.models.tuning), codes the
image in mode 3 with the tuned model, and writes the changes at the head of the payload; the
decoder derives the same tuned model from the shipped one and decodes the rest as mode 3. What
the payload opens with (docs/format.md, "Context mode 4"):

- one byte: the step's shift s (every change is a multiple of 2**-s);
- a varint K, then K pairs of varints: each distinct multiple (zigzag) and how many parameters
  take it, in ascending order of the multiple; the counts add up to the tuned parameters;
- a varint L and L bytes: the multiples in file order, range-coded with the table's counts
  (igc.coders.range, integer frequencies scaled from the counts); none when K is 1.

Mode 3's payload (its strips' table and streams, or one stream) follows unchanged.
"""

from __future__ import annotations

import copy
import itertools
import time
from dataclasses import replace

import numpy as np

from igc.codec.context import TUNED_BATCH
from igc.coders.range import RangeDecoder, RangeEncoder
from igc.core import container
from igc.core.container import encode_varint, read_varints
from igc.errors import FormatError
from igc.models import tuning

MODE = 4
BASE_MODE = 3  # what the tuned model codes the image in
FREQUENCY_BITS = 24
MAX_SHIFT = 15


def frequencies(counts: np.ndarray) -> np.ndarray:
    """Integer frequencies summing to 2**FREQUENCY_BITS, each >= 1, from the table's counts:
    floor-scaled, the remainder given to the most frequent (integers only, so any machine
    codes the same)."""
    counts = np.asarray(counts, np.int64)
    f = np.maximum(counts * (1 << FREQUENCY_BITS) // int(counts.sum()), 1)
    f[int(np.argmax(counts))] += (1 << FREQUENCY_BITS) - int(f.sum())
    return f


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(z: int) -> int:
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


def pack_changes(multiples: np.ndarray, shift: int = tuning.STEP_SHIFT) -> bytes:
    """The block that opens a mode-4 payload (the module's docstring has its layout)."""
    values, counts = np.unique(np.asarray(multiples, np.int64), return_counts=True)
    out = bytearray([shift]) + encode_varint(len(values))
    for v, c in zip(values.tolist(), counts.tolist(), strict=True):
        out += encode_varint(_zigzag(v)) + encode_varint(c)
    stream = b""
    if len(values) > 1:
        enc = RangeEncoder()
        enc.encode_same(np.searchsorted(values, multiples), frequencies(counts), FREQUENCY_BITS)
        stream = enc.finish()
    return bytes(out + encode_varint(len(stream)) + stream)


def _varints(payload: bytes, at: int, count: int) -> tuple[list[int], int]:
    """`count` varints of the block from `at`, and where they end; a damaged one is the
    block's error, not the header's."""
    try:
        values, used = read_varints(payload[at:], count)
    except FormatError:
        raise FormatError("corrupted payload: context mode 4's tuned parameters end early or "
                          "hold a malformed number") from None
    return values, at + used


def unpack_changes(payload: bytes, n: int) -> tuple[np.ndarray, int, int]:
    """(multiples, shift, where mode 3's payload starts) of a mode-4 payload whose model tunes
    `n` parameters; FormatError for a block no encoder writes. Every number is checked as a
    Python int before any array is made of it, and nothing larger than the n multiples and the
    K-entry table is allocated."""
    if not payload:
        raise FormatError("file truncated: context mode 4's tuned parameters are missing")
    shift = payload[0]
    if shift > MAX_SHIFT:
        raise FormatError(f"corrupted payload: tuned parameters in steps of 2**-{shift}")
    (k,), at = _varints(payload, 1, 1)
    if not 1 <= k <= n:
        raise FormatError(f"corrupted payload: {k} distinct tuned values for {n} parameters")
    pairs, at = _varints(payload, at, 2 * k)
    values = [_unzigzag(z) for z in pairs[0::2]]
    counts = pairs[1::2]
    if any(abs(v) > tuning.MAX_MULTIPLE for v in values) or any(
            b <= a for a, b in itertools.pairwise(values)):
        raise FormatError("corrupted payload: tuned values out of range or out of order")
    if any(c < 1 for c in counts) or sum(counts) != n:
        raise FormatError(f"corrupted payload: the tuned values' counts do not add up to {n}")
    (length,), at = _varints(payload, at, 1)
    if at + length > len(payload):
        raise FormatError("file truncated inside context mode 4's tuned parameters")
    table = np.array(values, np.int64)
    if k == 1:
        if length:
            raise FormatError("corrupted payload: a stream for a single tuned value")
        return np.full(n, table[0]), shift, at
    dec = RangeDecoder(payload[at : at + length])
    symbols = dec.decode_same(n, frequencies(np.array(counts, np.int64)), FREQUENCY_BITS)
    if (np.bincount(symbols, minlength=k) != counts).any():
        raise FormatError("corrupted payload: the tuned values disagree with their table")
    return table[symbols], shift, at + length


def _with_model(codec, model, context: int | None, batch: int | None = None):
    """A copy of `codec` coding with `model` in `context` (None: what a header says)."""
    inner = copy.copy(codec)
    inner.model, inner.context, inner.batch = model, context, batch
    return inner


def tuned_codec(codec, image):
    """(the mode-3 codec with the model tuned to `image`, the changes' block, seconds spent
    tuning). `codec` is a mode-4 NeuralCodec, which refused an untunable model when made."""
    start = time.perf_counter()
    tok = codec.tiling(BASE_MODE).encode(image)
    multiples = tuning.tune(codec.model, tok.tokens, tok.coded, codec.tokenizer.start_token)
    model = tuning.apply(codec.model, multiples)
    inner = _with_model(codec, model, BASE_MODE, codec.batch or TUNED_BATCH)
    return inner, pack_changes(multiples), time.perf_counter() - start


def encode(codec, image, progress=None):
    """A mode-4 file of `image`: the mode-3 file of the tuned model, its payload opened by the
    changes' block."""
    inner, block, _ = tuned_codec(codec, image)
    result = inner.encode(image, progress)
    header, payload = container.unpack(result.data)
    payload = block + payload
    header = replace(header, context=MODE, payload_length=len(payload))
    data = container.pack(header, payload)
    side = 8 * len(block)
    return replace(result, data=data, model_bits=result.model_bits + side,
                   token_bits=result.token_bits + side, header_bytes=len(data) - len(payload))


def estimate_bits(codec, image) -> float:
    """The model bits of a mode-4 file: the tuned model's mode-3 bits (its own estimate, the
    encoder's loop) plus the changes' block."""
    inner, block, _ = tuned_codec(codec, image)
    return inner.estimate_bits(image) + 8 * len(block)


def decode(codec, header, payload: bytes, progress=None):
    """The pixels of a mode-4 file: the tuned model derived from the changes, then mode 3."""
    codec.check_model(header)  # the file's model, before deriving anything from it
    reason = tuning.derivable(codec.model)
    if reason:
        raise FormatError(f"file uses context mode 4 (the model tuned to the image): {reason}; "
                          "decode it without --model, with the ImageGPT model it names")
    multiples, shift, at = unpack_changes(payload, sum(tuning.sizes(codec.model)))
    inner = _with_model(codec, tuning.apply(codec.model, multiples, shift), None)
    rest = payload[at:]
    return inner.decode_parsed(replace(header, context=BASE_MODE, payload_length=len(rest)),
                               rest, progress)
