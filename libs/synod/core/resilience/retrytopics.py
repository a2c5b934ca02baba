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

Time and randomness are inputs: `now` is any clock in seconds (the worker passes
the wall clock, since due times cross processes), `rng` a `random.Random`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class RetrySettings(BaseSettings):
    """How workers retry failed steps through retry topics (SYNOD_RETRY_*)."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_RETRY_", extra="ignore")

    # One delay per tier; as many tiers as delays (at most the retry topics the
    # catalogue has per role). Empty: no retry topics, a failure goes straight
    # to the planner as a StepFailed.
    delays_s: str = Field(
        default="1,5,20",
        description="comma-separated delay cap of each retry tier, in seconds",
    )
    base_s: float = Field(
        default=2.0, gt=0, description="backoff base: tier n waits up to base*2^(n-1)"
    )
    limits: str = Field(
        default="",
        description="reason=N pairs, e.g. 'deadline=1': at most N retries for that reason",
    )
    max_retry_after_s: float = Field(default=300.0, ge=0)

    @field_validator("delays_s")
    @classmethod
    def _delays(cls, value: str) -> str:
        parse_delays(value)
        return value

    @field_validator("limits")
    @classmethod
    def _limits(cls, value: str) -> str:
        parse_limits(value)
        return value

    def tiers(self, topics_per_role: int) -> RetryTiers | None:
        """The tiers, or None when retry topics are off (no delays)."""
        delays = parse_delays(self.delays_s)
        if not delays:
            return None
        if len(delays) > topics_per_role:
            raise ConfigError(
                f"SYNOD_RETRY_DELAYS_S has {len(delays)} tiers but the topic catalogue has "
                f"{topics_per_role} retry topics per role; give at most {topics_per_role} delays"
            )
        return RetryTiers(
            delays_s=delays,
            base_s=self.base_s,
            limits=parse_limits(self.limits),
            max_retry_after_s=self.max_retry_after_s,
        )


def parse_delays(text: str) -> tuple[float, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        delays = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"SYNOD_RETRY_DELAYS_S={text!r}: expected seconds separated by commas, e.g. '1,5,20'"
        ) from None
    RetryTiers(delays_s=delays)  # the same checks as at use
    return delays


def parse_limits(text: str) -> dict[str, int]:
    limits: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        reason, sep, number = part.partition("=")
        if not sep or not reason.strip() or not number.strip().isdigit():
            raise ConfigError(
                f"SYNOD_RETRY_LIMITS entry {part!r}: expected REASON=N with N >= 0, "
                "e.g. 'deadline=1'"
            )
        limits[reason.strip()] = int(number)
    return limits
