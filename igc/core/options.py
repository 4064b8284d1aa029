"""The ranges of options several commands share, checked in one place.

A --seed must be what numpy's generators and torch.manual_seed both take: numpy refuses
negatives and torch numbers past int64, each with an error that names neither the option nor the
range. A thread count past a C int made OpenMP warn about its environment variable and go on.
"""

from __future__ import annotations

import numpy as np

from igc.errors import UsageError

SEED_MAX = 2**63 - 1
MAX_THREADS = 4096  # far past any machine igc runs on; OpenMP and torch take it


def whole_number(value) -> bool:
    """An int (numpy's included), never a bool: True is not a count."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def checked_seed(seed) -> int:
    """`seed` as an int, or a one-line UsageError."""
    if not (whole_number(seed) and 0 <= seed <= SEED_MAX):
        raise UsageError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    return int(seed)


def checked_threads(threads) -> int:
    """A thread count as an int, or a one-line UsageError."""
    if not (whole_number(threads) and 1 <= threads <= MAX_THREADS):
        raise UsageError(f"--threads must be from 1 to {MAX_THREADS}, got {threads!r}")
    return int(threads)
