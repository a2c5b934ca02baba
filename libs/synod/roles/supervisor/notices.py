"""Quarantines as every planner sees them: the latest notice per instance.

The supervisor writes a `QuarantineNotice` per change to the compacted topic
`synod.supervisor`, keyed by instance, so the topic always holds each
instance's current state and a new reader rebuilds it from the start.
`QuarantineBook` is the fold (no I/O); `follow` is the Kafka reader that
feeds it, run by every planner instance (no consumer group: each needs all).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from synod.errors import DecodeError
from synod.transport.security import client_security
from synod.transport.topics import SUPERVISOR
from synod.wire import Codec, Envelope
from synod.wire.messages import QuarantineNotice

log = logging.getLogger("synod.supervisor")


@dataclass
class QuarantineBook:
    notices: dict[str, QuarantineNotice] = field(default_factory=dict)

    def apply(self, envelope: Envelope[Any]) -> bool:
        body = envelope.body
        if not isinstance(body, QuarantineNotice):
            return False
        self.notices[body.instance] = body
        return True

    def active(self, now: datetime) -> frozenset[str]:
        """Instances in quarantine at `now`. A notice past its `until` no longer
        counts even if the release was never written (a supervisor that died
        cannot keep anyone out for ever)."""
        return frozenset(
            n.instance
            for n in self.notices.values()
            if n.active and (n.until is None or n.until > now)
        )


async def follow(bootstrap: str, topic: str, book: QuarantineBook, *, poll_ms: int = 500) -> None:
    """Read every partition of `topic` from the beginning into `book`, until cancelled."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    codec = Codec()
    consumer = AIOKafkaConsumer(
        **client_security(), bootstrap_servers=bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions: set[int] | None = None
        for _ in range(60):  # the topic may be created a moment after we start
            partitions = consumer.partitions_for_topic(topic) or await _fetch(consumer, topic)
            if partitions:
                break
            await asyncio.sleep(1.0)
        if not partitions:
            log.warning("no partitions for the quarantine topic", extra={"topic": topic})
            return
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            for records in (await consumer.getmany(timeout_ms=poll_ms)).values():
                for r in records:
                    with contextlib.suppress(DecodeError):
                        book.apply(codec.decode(r.value))
    finally:
        await consumer.stop()


async def _fetch(consumer: Any, topic: str) -> set[int] | None:
    with contextlib.suppress(Exception):
        await consumer._client.force_metadata_update()  # aiokafka has no public call for it
    found: set[int] | None = consumer.partitions_for_topic(topic)
    return found


def topic_of(prefix: str) -> str:
    from synod.transport.topics import topic_name

    return topic_name(SUPERVISOR, prefix)
