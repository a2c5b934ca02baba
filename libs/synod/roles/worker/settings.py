"""The worker's retry-topic settings, from `SYNOD_RETRY_*` environment variables.

The pure tier policy is `synod.core.resilience.retrytopics.RetryTiers`; this module
only reads and checks the environment's text and builds the tiers from it.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from synod.core.resilience.retrytopics import RetryTiers
from synod.errors import ConfigError


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
