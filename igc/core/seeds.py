"""The one rule for a --seed: what numpy's generators and torch.manual_seed both take.

numpy refuses negatives and torch numbers past int64, each with an error that names neither the
option nor the range, so every command that takes a seed checks it here first.
"""

from __future__ import annotations

import numpy as np

from igc.errors import UsageError

SEED_MAX = 2**63 - 1


def checked_seed(seed) -> int:
    """`seed` as an int, or a one-line UsageError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
            not 0 <= seed <= SEED_MAX:
        raise UsageError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    return int(seed)
