"""A model that knows nothing: every subpixel value equally likely.

It goes through the same tokenizer, coder and container as ImageGPT, so it costs exactly 8 bits per
subpixel before the header, which makes it the control that checks the whole pipeline's arithmetic.
"""

from __future__ import annotations

import numpy as np


class UniformModel:
    name = "uniform"
    description = "every subpixel value equally likely (8 bits per subpixel)"
    vocab_size = 256
    context_length = 16 * 16 * 3
    fingerprint = "0" * 16
    parameters = 0
    tokenizer = "subpixel"
    numerics = 0
    numerics_supported = (0,)

    def __init__(self, context_length: int = 16 * 16 * 3) -> None:
        self.context_length = context_length

    def log_probs(self, sequences: np.ndarray) -> np.ndarray:
        n, length = sequences.shape
        return np.full((n, length, self.vocab_size), -np.log(self.vocab_size), dtype=np.float32)

    def start(self, batch: int, length: int | None = None, numerics: int = 0) -> list[int]:
        return [batch]

    def step(self, state, tokens: np.ndarray) -> np.ndarray:
        return np.full((state[0], self.vocab_size), 1.0 / self.vocab_size)
