"""Exponential backoff with full jitter (sans-I/O; the random source is passed in).

The one backoff of the library: every retry loop asks a `RetryPolicy` how long
to wait and sleeps that long itself (the policy never sleeps or reads a clock).

sleep = uniform(0, min(cap_s, base_s * 2**attempt)); only `transient` errors are
retried, up to `max_attempts` retries (None: no limit, for a loop that must not
give up and is bounded otherwise, e.g. by a stop signal); `permanent` and
`budget` never are.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from synod.errors import ErrorClass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 0.5
    cap_s: float = 30.0
    max_attempts: int | None = 5

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("need 0 < base_s <= cap_s")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("need max_attempts >= 0 (or None: no limit)")

    def next_delay(self, attempt: int, error_class: ErrorClass, rng: random.Random) -> float | None:
        """Delay before retry number `attempt` (0-based), or None to give up."""
        if error_class != "transient" or attempt < 0:
            return None
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        ceiling = self.cap_s if attempt >= 64 else min(self.cap_s, self.base_s * 2.0**attempt)
        return rng.uniform(0.0, ceiling)
