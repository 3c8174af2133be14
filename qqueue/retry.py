"""Retry backoff policy; pure."""

from __future__ import annotations

import random


def backoff_s(attempt: int, *, base_s: float = 1.0, cap_s: float = 300.0, rng: random.Random | None = None) -> float:
    """Seconds to wait before retrying after failed attempt number `attempt` (1-based).

    Exponential (base * 2**(attempt-1)), capped, then jittered uniformly within +-50% so a burst of failures
    does not come back as a burst of retries.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    raw = min(cap_s, base_s * 2.0 ** min(attempt - 1, 62))
    return raw * (rng or random).uniform(0.5, 1.5)
