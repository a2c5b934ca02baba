"""Clocks on the wire: stamping what a service sends, merging what it handles,
and the metrics of causal delivery.

`Stamper` is the one place envelopes get their `vclock`, `lamport`, `hlc`,
`causes` and `cause_topics` (the `Publisher` calls it on every send; the
service host calls `observe` for every message it hands to a handler). The
message being handled when a send happens (`HANDLING`, set by the host) is
one of the send's causes: that is how every service fills `causes` without
its role logic knowing. A copy sent on (already stamped, same message id) is
left as it is, so every copy of one message carries the same clocks.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from synod.core.ordering import ClockBook, Release
from synod.core.ordering.hlc import DEFAULT_MAX_SKEW_MS
from synod.wire import Envelope

log = logging.getLogger("synod.ordering")

# The envelope a handler is working on in this asyncio task (None outside handlers).
HANDLING: contextvars.ContextVar[Envelope[Any] | None] = contextvars.ContextVar(
    "synod_handling", default=None
)

HLC_CLAMPED = Counter(
    "synod_ordering_hlc_clamped_total",
    "Received clocks further ahead than the skew bound, clamped (a host's clock is wrong)",
)
CAUSAL_RELEASES = Counter(
    "synod_ordering_causal_releases_total",
    "Messages a causal buffer delivered, by outcome (in_order, waited, gap)",
    ["consumer", "outcome"],
)
CAUSAL_HELD = Gauge(
    "synod_ordering_causal_held_messages", "Messages a causal buffer holds now", ["consumer"]
)
CAUSAL_HOLD_SECONDS = Histogram(
    "synod_ordering_causal_hold_seconds",
    "How long a message waited in a causal buffer for its causes",
    ["consumer"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Stamper:
    def __init__(
        self,
        participant: str,
        *,
        max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.book = ClockBook(participant, max_skew_ms=max_skew_ms)
        self.clock_ms = clock_ms

    def stamp(self, topic: str, envelope: Envelope[Any]) -> Envelope[Any]:
        if envelope.lamport > 0 or envelope.hlc > 0:
            self.book.locate(envelope.message_id, topic)  # a copy sent on: keep its clocks
            return envelope
        causes = list(envelope.causes)
        current = HANDLING.get()
        if (
            current is not None
            and current.task_id is not None
            and current.task_id == envelope.task_id
            and current.message_id != envelope.message_id
        ):
            causes.append(current.message_id)
        s = self.book.send(envelope.task_id, envelope.message_id, topic, causes, self.clock_ms())
        return envelope.model_copy(
            update={
                "vclock": s.vclock,
                "lamport": s.lamport,
                "hlc": s.hlc,
                "causes": s.causes,
                "cause_topics": s.cause_topics,
            }
        )

    def observe(self, topic: str, envelope: Envelope[Any]) -> None:
        """Merge the clocks of a message about to be handled."""
        reading = self.book.receive(
            envelope.task_id,
            envelope.message_id,
            topic,
            envelope.vclock,
            envelope.lamport,
            envelope.hlc,
            self.clock_ms(),
        )
        if reading is not None and reading.clamped:
            HLC_CLAMPED.inc()
            log.warning(
                "clock skew beyond the bound; the sender's time was clamped",
                extra={
                    "task_id": envelope.task_id,
                    "message_id": envelope.message_id,
                    "sender": envelope.sender.instance,
                    "skew_ms": reading.skew_ms,
                    "bound_ms": self.book.hlc.max_skew_ms,
                },
            )


def record_releases(consumer: str, releases: list[Release[Any]], held_now: int) -> None:
    """Count a buffer's deliveries; a gap is logged with the causes it went without."""
    for r in releases:
        if r.gap:
            outcome = "gap"
            log.warning(
                "causal_gap: delivered without all its causes",
                extra={
                    "consumer": consumer,
                    "message_id": r.id,
                    "missing": sorted(r.missing),
                    "reason": r.reason,
                    "held_s": round(r.held_s, 3),
                },
            )
        else:
            outcome = "waited" if r.held_s > 0 else "in_order"
        CAUSAL_RELEASES.labels(consumer=consumer, outcome=outcome).inc()
        if r.held_s > 0:
            CAUSAL_HOLD_SECONDS.labels(consumer=consumer).observe(r.held_s)
    CAUSAL_HELD.labels(consumer=consumer).set(held_now)
