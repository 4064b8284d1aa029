"""What igc calls on each piece of a compressor: the contract plugin authors implement.

A model-based compressor is `Tokenizer` + `Model` + `Coder`: the tokenizer turns an image into
token sequences (one per tile), the model gives a distribution over the next token at every
position, and the coder turns tokens and distributions into bytes. `NeuralCodec`
(igc/codec/neural.py) calls exactly the members below and nothing else, so a plugin that has them
composes with the other pieces; `conform` refuses one that lacks any, naming what is missing.
A classical codec implements `Compressor` directly; a `Reporter` turns bench results into output.

Every member listed in a protocol is required. Optional extras that igc uses when present are
listed in each docstring under "Optional"; the ones igc's own code calls are declared as small
protocols of their own at the end (`ModelBased`, `Described`, `BatchedEngine`,
`IntegerFrequencies`, `Quantized`, `Specified`), which igc tests with `isinstance`, so that a
reader and a type checker see each contract.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

import numpy as np

from igc.core.types import Image, TokenizedImage
from igc.errors import PluginError


@runtime_checkable
class Compressor(Protocol):
    """Anything that turns an (H, W, 3) uint8 image into bytes and, if lossless, back.

    Optional: `available()` (classmethod) returning a reason string when a library is missing,
    so `igc bench` lists the compressor as unavailable instead of failing.
    """

    name: str
    lossless: bool

    def compress(self, image: Image) -> bytes: ...

    def decompress(self, data: bytes) -> Image: ...


@runtime_checkable
class Tokenizer(Protocol):
    """Image <-> token sequences, one per tile.

    The factory igc registers is called with the keyword arguments it names among `model` (the
    `Model` it will code for, whose `context_length` bounds a tile's sequence) and `order` (the
    token order a user asked for, "interleaved" or "channel"), and raises `igc.UsageError` for a
    model or order it cannot serve.

    Optional: `fingerprint` (16 hex digits) for tokenizers with data of their own (the palette's
    colour clusters): it is combined with the model's into the header's fingerprint, so a file
    refuses another palette. `batch`: tiles to step together by default (long sequences have large
    caches).
    """

    name: str  # the registered name, recorded in file headers
    vocab_size: int  # symbols a position can take (256 for subpixels), start token excluded
    start_token: int  # fed to the model before a tile's first token; not coded
    tile: int  # tile side in pixels, recorded in file headers
    order: str  # "interleaved" or "channel", recorded in file headers
    lossless: bool  # decode(encode(x)) == x; if False the codec may code exact residuals after

    def encode(self, image: Image) -> TokenizedImage:
        """Every tile as a fixed-length sequence, with a mask of the positions that carry
        information; the others are padding the decoder fills from earlier positions."""
        ...

    def decode(self, tokens: np.ndarray, height: int, width: int) -> Image:
        """(tiles, L) tokens -> the image (its approximation, for a lossy tokenizer). Raise
        `igc.FormatError` for tokens out of range: they come from a possibly corrupted file."""
        ...

    def layout(self, height: int, width: int) -> TokenizedImage:
        """The tiling of an image of this size with tokens left at zero: what a decoder knows
        before decoding (which positions are coded, where padding copies from)."""
        ...


@runtime_checkable
class Model(Protocol):
    """Token sequences -> distributions over the next token at every position.

    The factory igc registers is called with `spec` if its signature names it: None when the
    model is selected by its registered name (compress, bench, `get_compressor(NAME)`), the
    string given in `get_compressor(NAME, model=SPEC)`, and when decoding a file, what the
    factory's `spec_for(model_id, fingerprint)` returns, else the header's model id. Bench's
    `--model` is the imagegpt compressor's and never reaches another model (docs/plugins.md,
    "What `spec` is").

    `start`/`step` is the pass the codec uses: encoder and decoder both step the same tiles in the
    same batches and lanes, and must get bit-identical probabilities (docs/plugins.md,
    "Determinism"). `log_probs` is the one-shot pass used only by `--estimate`.

    Optional: `tokenizer` (the registered tokenizer name it is coded with by default, else
    "subpixel"), `parameters` (reported by bench), and on the factory a classmethod
    `spec_for(model_id, fingerprint) -> str` that finds the weights a file names (ImageGPT looks in
    the shipped models and $IGC_MODEL_PATH; without it the id itself is the spec). The
    capabilities `IntegerFrequencies`, `BatchedEngine`, `Quantized` and `Specified` below.
    """

    name: str  # the model id recorded in file headers (at most 64 bytes)
    vocab_size: int  # output classes; equals the tokenizer's vocab_size (start token excluded)
    context_length: int  # tokens per sequence the model accepts, start token included
    fingerprint: str  # 16 hex digits identifying the exact model (weights); headers record it
    numerics: int  # which arithmetic new files are coded with (0 for a model with one step)
    numerics_supported: tuple[int, ...]  # numerics it can recompute to decode a file

    def log_probs(self, sequences: np.ndarray) -> np.ndarray:
        """(N, L) int tokens (start token first) -> (N, L, vocab_size) natural-log probabilities,
        row t being the distribution of token t+1."""
        ...

    def start(self, batch: int, length: int, numerics: int) -> Any:
        """A fresh state for `batch` sequences (a lane of tiles), computing with the arithmetic
        `numerics` (one of `numerics_supported`; a file's header names it). `length` is exactly
        the number of `step` calls that will follow: one past the last coded position of any
        tile of the image, at most the tokens per tile (so at most `context_length`).

        Optional keyword `geometry`: a `start` that names it gets an `igc.core.types.Geometry`
        (tile side, token order, tokens per tile, `position(t)` -> (row, column, channel))."""
        ...

    def step(self, state: Any, tokens: np.ndarray) -> np.ndarray:
        """Feed one token per sequence ((batch,) int64, the start token first) and get the
        (batch, vocab_size) float64 distributions of the next token, each row summing to 1."""
        ...


@runtime_checkable
class SymbolEncoder(Protocol):
    """One stream being written; `encode` is called in coding order, `finish` once.

    Optional: `encode_frequencies(symbols, freqs, bits)`, coding symbol i with the integer row
    freqs[i] ((n, k) int64, every entry >= 1, each row summing to 2**bits) as a model that
    computes integers (`IntegerFrequencies`) gives it; without it such rows come to `encode` as
    their exact floats freqs * 2**-bits (docs/plugins.md, "Integer frequencies").
    """

    def encode(self, symbols: np.ndarray, probs: np.ndarray) -> None:
        """Code (n,) int symbols, row i of the (n, k) float64 `probs` being symbol i's
        distribution."""
        ...

    def finish(self) -> bytes: ...


@runtime_checkable
class SymbolDecoder(Protocol):
    """One stream being read, in the order it was written.

    Optional: `decode_frequencies(freqs, bits)`, the integer counterpart of `decode` (see
    `SymbolEncoder`); it must read what `encode_frequencies` wrote, and what `encode` wrote with
    the same rows as exact floats if the encoder lacks it.
    """

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """(n, k) distributions -> the (n,) int symbols coded with them. Raise
        `igc.FormatError` on a stream that cannot be decoded."""
        ...


@runtime_checkable
class Coder(Protocol):
    """Symbols + distributions -> bytes and back. The factory is called without arguments."""

    name: str  # the registered name, recorded in file headers
    precision: int  # bits of fixed-point probability precision, recorded in file headers

    def ideal_bits(self, symbols: np.ndarray, probs: np.ndarray) -> float:
        """-sum(log2 p(symbol)): what an ideal entropy coder would spend."""
        ...

    def encoder(self) -> SymbolEncoder: ...

    def decoder(self, data: bytes) -> SymbolDecoder: ...


@runtime_checkable
class Reporter(Protocol):
    """Bench results -> output (a table, JSON, CSV, a plot...).

    `report(result, None)` writes to standard output, `report(result, path)` to that file.
    Optional: `render(result) -> str`, the report as text; `igc.report(result, NAME)` returns it
    (without `render`, what `report(result, None)` writes to standard output is captured and
    returned instead).
    """

    name: str

    def report(self, result: Any, destination: Any = None) -> None: ...


# -- optional capabilities: what igc calls when a piece has it --------------------------------
@runtime_checkable
class ModelBased(Protocol):
    """A compressor that codes with a model's probabilities (igc's `ModelCompressor`; a plugin
    compressor may be one too): bench reports its model bits beside the file size. `--estimate`
    calls its `estimate_bits(image) -> float` (model bits from one parallel pass, no file)."""

    model_based: bool  # True

    def compress_with_stats(self, image: Image, progress: Any = None) -> Any:
        """An `EncodeResult` (igc/codec/neural.py): the file's `data`, `model_bits`,
        `header_bytes`, and for a lossy tokenizer its `approximation`."""
        ...


@runtime_checkable
class Described(Protocol):
    """A compressor that describes its model: bench's environment records `model_info` (id,
    fingerprint, parameters, tokenizer, coder, numerics...)."""

    model_info: dict


@runtime_checkable
class IntegerFrequencies(Protocol):
    """A model whose steps compute integer frequency tables (numerics 2, igc.core.numerics):
    the codec hands the coder the table itself rather than floats made from it."""

    def frequency_bits(self, numerics: int) -> int | None:
        """Bits of the tables `step_frequencies` gives under `numerics` (rows sum to
        2**bits), or None where that numerics computes floats (then `step` is used)."""
        ...

    def step_frequencies(self, state: Any, tokens: np.ndarray) -> np.ndarray:
        """As `Model.step`, but (batch, vocab_size) int64 frequencies, every one >= 1; `step`
        must return exactly these times 2**-bits."""
        ...


@runtime_checkable
class HeadLogits(Protocol):
    """A model whose integer steps can stop before the frequencies, giving the output head's
    input and logits, so that the codec can adapt them to the image (context mode 1,
    igc.codec.adapt)."""

    def head_shape(self, numerics: int) -> tuple[int, int, int] | None:
        """(channels, symbols, fraction bits of the head's input) under `numerics`, or None
        where that numerics has no integer head."""
        ...

    def step_logits(self, state: Any, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As `step_frequencies`, but the head's input (batch, channels) and its Q16 log2-unit
        logits (batch, symbols), both int64."""
        ...


@runtime_checkable
class BlockSteps(Protocol):
    """A model whose integer steps can run several positions per call where every token is
    known beforehand (an encoder's), giving exactly what that many `step_frequencies` or
    `step_logits` calls give (the tokens of one call: (batch, positions)). An optional
    attribute `block_positions` (int) names the positions per call that suit it (igc.codec.loop
    takes 16 otherwise)."""

    def block_steps(self, numerics: int) -> bool:
        """True where a block is faster than its steps under `numerics` (the codec loop then
        computes an encoder's positions in blocks; elsewhere it steps)."""
        ...

    def block_frequencies(self, state: Any, tokens: np.ndarray) -> np.ndarray:
        """(batch, positions, vocab_size) int64: each position's `step_frequencies`."""
        ...

    def block_logits(self, state: Any, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each position's `step_logits`: (batch, positions, channels), (batch, positions,
        symbols)."""
        ...


@runtime_checkable
class BatchedEngine(Protocol):
    """A model whose engine should step every tile of a batch as one state (a GPU)."""

    def batched_engine(self, numerics: int) -> bool:
        """True when it does, for this numerics (which must be regroupable: the tiles' grouping
        then changes no probability)."""
        ...


@runtime_checkable
class Quantized(Protocol):
    """A model with an integer model behind its numerics 2 (bench names the engine)."""

    integer_model: Any


@runtime_checkable
class Specified(Protocol):
    """A model that remembers the spec the user gave (`--model`), for messages."""

    spec: str


def members(protocol: type) -> list[str]:
    """The members a protocol requires: its annotated attributes, then its methods."""
    attributes = list(inspect.get_annotations(protocol))
    methods = [name for name, value in vars(protocol).items()
               if callable(value) and not name.startswith("_")]
    return attributes + [m for m in methods if m not in attributes]


def missing(obj: Any, protocol: type) -> list[str]:
    """Required members `obj` lacks (or has but cannot call, for methods)."""
    methods = {name for name, value in vars(protocol).items() if callable(value)}
    out = []
    for name in members(protocol):
        try:
            value = getattr(obj, name)
        except AttributeError:
            out.append(name)
            continue
        if name in methods and not callable(value):
            out.append(name)
    return out


def conform(obj: Any, protocol: type, label: str) -> Any:
    """`obj` itself if it has every member of `protocol`; else a PluginError naming the missing
    ones, e.g. "model 'pixelcnn' does not fit igc's Model protocol: it lacks start, numerics"."""
    lacking = missing(obj, protocol)
    if lacking:
        raise PluginError(f"{label} does not fit igc's {protocol.__name__} protocol: it lacks "
                          f"{', '.join(lacking)} (see docs/plugins.md)")
    return obj
