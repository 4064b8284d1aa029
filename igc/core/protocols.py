"""The four interfaces a compressor is built from, and the one a classical codec implements.

A model-based compressor is `Tokenizer` + `Model` + `Coder`: the tokenizer turns an image into
token sequences (one per tile), the model gives a distribution over the next token at every
position, and the coder turns tokens and distributions into bytes. Keeping them apart lets a
plugin swap one piece (a new coder, a palette tokenizer) without touching the others.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from igc.core.types import Image, TokenizedImage


@runtime_checkable
class Compressor(Protocol):
    """Anything that turns an (H, W, 3) uint8 image into bytes and, if lossless, back."""

    name: str
    lossless: bool

    def compress(self, image: Image) -> bytes: ...

    def decompress(self, data: bytes) -> Image: ...


@runtime_checkable
class Tokenizer(Protocol):
    """Image <-> token sequences, exactly invertible.

    `encode` returns every tile as a fixed-length sequence plus a mask of the positions that carry
    information; the other positions are padding that the decoder fills from already-decoded
    tokens (`TokenizedImage.pad_source`), so padding never costs bits.
    """

    name: str
    vocab_size: int  # symbols a position can take (256 for subpixels), start token excluded
    start_token: int

    def encode(self, image: Image) -> TokenizedImage: ...

    def decode(self, tokens: np.ndarray, height: int, width: int) -> Image: ...

    def layout(self, height: int, width: int) -> TokenizedImage:
        """The tiling of an image of this size with tokens left at zero (what a decoder knows)."""
        ...


class DecodingState(Protocol):
    """Opaque per-batch state of an incremental model (its key/value cache)."""


@runtime_checkable
class Model(Protocol):
    """Token sequences -> distributions over the next token at every position.

    `log_probs` is the one-shot pass used for estimates. `start`/`step` is the incremental pass
    used by the real codec; encoder and decoder both use it so they compute identical floats.
    """

    name: str
    vocab_size: int  # output classes (the start token is never predicted)
    context_length: int  # tokens per sequence the model accepts, start token included
    fingerprint: str  # hex digest of the weights; identifies the exact model in a file header

    def log_probs(self, sequences: np.ndarray) -> np.ndarray:
        """(N, L) int tokens (start token first) -> (N, L, vocab_size) float32 natural-log probs,
        row t being the distribution of token t+1."""
        ...

    def start(self, batch: int) -> Any: ...

    def step(self, state: Any, tokens: np.ndarray) -> np.ndarray:
        """Feed one token per sequence, get (batch, vocab_size) float64 probabilities."""
        ...


class SymbolEncoder(Protocol):
    def encode(self, symbols: np.ndarray, probs: np.ndarray) -> None: ...

    def finish(self) -> bytes: ...


class SymbolDecoder(Protocol):
    def decode(self, probs: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Coder(Protocol):
    """Symbols + distributions -> bytes and back."""

    name: str

    def ideal_bits(self, symbols: np.ndarray, probs: np.ndarray) -> float:
        """-sum(log2 p(symbol)): what an ideal entropy coder would spend."""
        ...

    def encoder(self) -> SymbolEncoder: ...

    def decoder(self, data: bytes) -> SymbolDecoder: ...


@runtime_checkable
class Reporter(Protocol):
    """Bench results -> output (a table, JSON, CSV, a plot...)."""

    name: str

    def report(self, result: Any, destination: Any = None) -> None: ...
