"""The settings every Synod process reads, from `SYNOD_*` environment variables.

One model so `synod config` can print the effective settings (secrets masked)
and a typo in a value fails at start-up with the variable's name.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach Kafka and how clients behave on it."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_", extra="ignore")

    bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers")
    topic_prefix: str = Field(
        default="", description="prefix of every topic name, so installs can share a cluster"
    )
    # A killed agent's partitions move after the session timeout; 10 s trades a
    # slower failover for tolerance of GC or scheduler pauses (see docs/adr).
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    # Static membership (group.instance.id = the instance id): a restarted instance
    # with the same id takes its partitions back at once, with no rebalance, and a
    # zombie with the same id is fenced. Only for stable ids (`synod up`, a
    # StatefulSet): a static member does not leave on shutdown, so a scaled-down
    # one holds its partitions until the session timeout.
    static_membership: bool = False
