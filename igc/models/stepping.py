"""What every numerics-2 model of igc's own loader shares (igc.models.imagegpt's ImageGPT,
igc.models.pixel's pixel models): its integer steps through an engine, and the host memory an
engine's state takes. A mixin, so that neither model module imports the other.
"""

from __future__ import annotations

import numpy as np

from igc.core.numerics import INTEGER


class IntegerState:
    """A numerics-2 engine and its state for one batch (lane) of sequences."""

    __slots__ = ("engine", "inner")

    def __init__(self, engine, inner) -> None:
        self.engine, self.inner = engine, inner


class IntegerStepping:
    """The `Model` members over an engine's integer steps: a class using it has `engine()`."""

    def frequency_bits(self, numerics: int) -> int | None:
        """Numerics 2 steps give integer frequencies summing to 2**24 (`step_frequencies`); the
        float numerics give None (`step`'s distributions)."""
        return INTEGER.frequency_bits if numerics == INTEGER.number else None

    @staticmethod
    def _state_bytes(rows, length, numerics, engine, heads, d, c, nl, inner, vocab,
                     rows_heads) -> int:
        if numerics == 2:
            from igc.engines.engines import current_engine

            engine = engine or current_engine()
            if engine == "cuda":
                return 0
            if engine == "reference":  # int64 keys, shifts and values
                return nl * rows_heads * length * (2 * d + 1) * 8 + rows * (c + vocab) * 8
            # cpu: int16 keys in blocks of 16 positions, int8 shifts, int16 values (dv padded)
            d2, dv, blocks = (d + 1) // 2, -(-d // 16) * 16, -(-length // 16)
            per_row_head = blocks * d2 * 32 * 2 + length + (length + 1) // 2 * dv * 2 * 2
            width = max(3 * c, inner, vocab) + 16
            tiles = 2 * 16 * -(-max(c, inner) // 64) * 64 + 4096 + 64  # AMX scratch, at most
            return nl * rows_heads * per_row_head + rows * (c + 2 * width + 3) * 8 + tiles
        if numerics == 1:  # bf16 keys in blocks of 64 positions and bf16 values
            per_row_head = (-(-length // 64) * 64 + length) * d * 2
            return nl * rows_heads * per_row_head + rows * (8 * c + inner + vocab) * 4
        return nl * rows_heads * length * d * 2 * 4 + rows * (4 * c + inner + vocab) * 4

    def step_frequencies(self, state: IntegerState, tokens: np.ndarray) -> np.ndarray:
        """A numerics-2 step: (batch, vocab_size) int64 frequencies, each >= 1, summing to
        2**frequency_bits(2), exactly as the engine computed them."""
        return state.engine.step(state.inner, np.ascontiguousarray(tokens, dtype=np.int64))

    def step_logits(self, state: IntegerState, tokens: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """A numerics-2 step that stops before the frequencies: the head's input (batch,
        channels) and its Q16 log2-unit logits (batch, symbols), int64, exactly as every engine
        computes them."""
        return state.engine.step_logits(state.inner, np.ascontiguousarray(tokens, np.int64))

    def block_steps(self, numerics: int) -> bool:
        """Whether an engine call computes a block of positions at once (numerics 2 on the cpu
        engine); the other engines take a block as that many steps."""
        return numerics == INTEGER.number and hasattr(self.engine(), "block")

    def block_frequencies(self, state: IntegerState, tokens: np.ndarray) -> np.ndarray:
        """`step_frequencies` of several known positions at once: tokens (batch, positions)
        -> (batch, positions, vocab_size). One engine call where the engine computes blocks
        (cpu), one step per position elsewhere: the same integers either way."""
        tokens = np.ascontiguousarray(tokens, np.int64)
        if hasattr(state.engine, "block"):
            return state.engine.block(state.inner, tokens)
        return np.stack([self.step_frequencies(state, tokens[:, p])
                         for p in range(tokens.shape[1])], axis=1)

    def block_logits(self, state: IntegerState, tokens: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """`step_logits` of several known positions at once, as `block_frequencies`."""
        tokens = np.ascontiguousarray(tokens, np.int64)
        if hasattr(state.engine, "block_logits"):
            return state.engine.block_logits(state.inner, tokens)
        steps = [self.step_logits(state, tokens[:, p]) for p in range(tokens.shape[1])]
        return tuple(np.stack(column, axis=1) for column in zip(*steps, strict=True))

