"""Where a failed step waits before it runs again, and for how long (sans-I/O).

A step that failed transiently is not retried in place (that would hold its
partition of the work topic) but parked in a retry topic,
`synod.retry.<role>.<n>`, one topic per tier. Tier `n` waits a delay drawn
with full jitter from the exponential backoff (`backoff.RetryPolicy`), capped
by that tier's configured delay, so the tiers' delays increase and a record in
tier `n` never waits longer than tier `n`'s delay -- unless the failure said
when to come back (`retry_after_s`, e.g. an open circuit breaker's remaining
open time), which is then the lower bound.

Only `transient` failures are retried; `permanent` and `budget` ones never are.
A reason may have a smaller limit than the number of tiers (a hung call costs a
whole step deadline per run, so fewer reruns may be wanted). When no tier is
left the decision is `Exhausted`; the worker then reports the step failed and
dead-letters the original request.

The tiers come from `RetryTiers(...)`; the worker reads them from the
environment (SYNOD_RETRY_*) with `synod.roles.worker.settings.RetrySettings`.

Time and randomness are inputs: `now` is any clock in seconds (the worker passes
the wall clock, since due times cross processes), `rng` a `random.Random`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from synod.core.resilience.backoff import RetryPolicy
from synod.errors import ConfigError, ErrorClass


@dataclass(frozen=True, slots=True)
class Park:
    """Retry in tier `tier` (1-based), `delay_s` from now, i.e. at `due_at`."""

    tier: int
    delay_s: float
    due_at: float


@dataclass(frozen=True, slots=True)
class Exhausted:
    """No retry: the error is not transient, or its tiers are spent."""

    why: Literal["not_transient", "tiers_spent"]


RetryDecision = Park | Exhausted


@dataclass(frozen=True)
class RetryTiers:
    """The retry tiers: each tier's delay cap, the backoff base, limits per reason."""

    delays_s: tuple[float, ...]
    base_s: float = 1.0
    # reason -> how many retries at most (fewer than the tiers); others use every tier.
    limits: Mapping[str, int] = field(default_factory=dict)
    # An upper bound on a retry_after hint taken as the delay's floor, so a bogus
    # hint cannot park a step for hours.
    max_retry_after_s: float = 300.0

    def __post_init__(self) -> None:
        if any(not d > 0 for d in self.delays_s):
            raise ConfigError(f"retry delays must all be > 0 s, got {list(self.delays_s)}")
        if list(self.delays_s) != sorted(self.delays_s):
            raise ConfigError(
                f"retry delays must not decrease from one tier to the next, "
                f"got {list(self.delays_s)}"
            )
        if not self.base_s > 0:
            raise ConfigError(f"the retry backoff base must be > 0 s, got {self.base_s}")
        bad = {reason: n for reason, n in self.limits.items() if n < 0}
        if bad:
            raise ConfigError(f"retry limits must be >= 0, got {bad}")
        if self.max_retry_after_s < 0:
            raise ConfigError(f"max_retry_after_s must be >= 0, got {self.max_retry_after_s}")

    @property
    def tiers(self) -> int:
        return len(self.delays_s)

    def limit(self, reason: str) -> int:
        """How many retries a failure with this reason gets in all."""
        return min(self.tiers, self.limits.get(reason, self.tiers))

    def ceiling_s(self, tier: int) -> float:
        """The most tier `tier` (1-based) waits without a retry_after hint."""
        cap = self.delays_s[tier - 1]
        return min(cap, self.base_s * 2.0 ** min(tier - 1, 64))

    def longest_wait_s(self) -> float:
        """The longest any parked record waits (a bound for the waiting side)."""
        return max(self.delays_s, default=0.0) + self.max_retry_after_s

    def next_retry(
        self,
        *,
        error_class: ErrorClass,
        reason: str,
        retries_so_far: int,
        retry_after_s: float | None,
        rng: random.Random,
        now: float,
    ) -> RetryDecision:
        """What to do with a step that just failed after `retries_so_far` retries."""
        if error_class != "transient":
            return Exhausted("not_transient")
        if retries_so_far < 0:
            raise ValueError(f"retries_so_far must be >= 0, got {retries_so_far}")
        if retries_so_far >= self.limit(reason):
            return Exhausted("tiers_spent")
        tier = retries_so_far + 1
        backoff = RetryPolicy(
            base_s=min(self.base_s, self.delays_s[tier - 1]),
            cap_s=self.delays_s[tier - 1],
            max_attempts=tier,
        )
        jittered = backoff.next_delay(tier - 1, error_class, rng)
        assert jittered is not None  # transient, and attempt tier-1 < max_attempts
        floor = min(max(retry_after_s or 0.0, 0.0), self.max_retry_after_s)
        delay = max(jittered, floor)
        return Park(tier=tier, delay_s=delay, due_at=now + delay)
