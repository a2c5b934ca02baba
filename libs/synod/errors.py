"""The one exception hierarchy of Synod.

Every error that can reach a step carries its class, because the class decides
what happens next: `transient` errors are retried, `permanent` ones are not,
and `budget` errors mean a token, cost or step budget is spent.
"""

from __future__ import annotations

from typing import Literal

ErrorClass = Literal["transient", "permanent", "budget"]


class SynodError(Exception):
    """Base of every error Synod raises on purpose."""

    error_class: ErrorClass = "permanent"


class ConfigError(SynodError):
    """A setting is missing or invalid; the message says which and how to fix it."""


class BrokerError(SynodError):
    """The local Kafka broker could not be fetched, started, reached or stopped."""

    error_class: ErrorClass = "transient"


DecodeReason = Literal[
    "undecodable",  # neither Avro single-object encoding nor JSON, or truncated
    "unknown_schema",  # Avro with a fingerprint no schema in schemas/ has
    "schema_violation",  # decodes, but fields are missing, mistyped or invalid
    "oversized",  # larger than the configured maximum message size
]


class WireError(SynodError):
    """A message that cannot go on or come off the wire.

    `reason` is one of a few stable codes (`DecodeReason`) so dead letters can be
    filtered by it; the message says what exactly is wrong.
    """

    error_class: ErrorClass = "permanent"

    def __init__(self, reason: DecodeReason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: DecodeReason = reason
        self.detail = message


class DecodeError(WireError):
    """Bytes from the wire that are not a valid Synod message."""


class EncodeError(WireError):
    """A message that must not be sent (for instance, larger than the limit)."""
