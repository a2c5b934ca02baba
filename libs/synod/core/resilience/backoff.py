"""Exponential backoff with full jitter (sans-I/O; the random source is passed in).

sleep = uniform(0, min(cap_s, base_s * 2**attempt)); only `transient` errors are
retried, up to `max_attempts` retries; `permanent` and `budget` never are.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from synod.errors import ErrorClass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 0.5
    cap_s: float = 30.0
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s or self.max_attempts < 0:
            raise ValueError("need 0 < base_s <= cap_s and max_attempts >= 0")

    def next_delay(self, attempt: int, error_class: ErrorClass, rng: random.Random) -> float | None:
        """Delay before retry number `attempt` (0-based), or None to give up."""
        if error_class != "transient" or attempt < 0 or attempt >= self.max_attempts:
            return None
        ceiling = self.cap_s if attempt >= 64 else min(self.cap_s, self.base_s * 2.0**attempt)
        return rng.uniform(0.0, ceiling)
