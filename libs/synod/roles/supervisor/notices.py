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

from synod.errors import ConfigError, DecodeError
from synod.transport.reader import PartitionReader, topic_partitions
from synod.transport.topics import SUPERVISOR, topic_name
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
    codec = Codec()
    partitions = None
    for _ in range(60):  # the topic may be created a moment after we start
        with contextlib.suppress(ConfigError):
            partitions = await topic_partitions(bootstrap, [topic])
            break
        await asyncio.sleep(1.0)
    if not partitions:
        log.warning("no partitions for the quarantine topic", extra={"topic": topic})
        return
    async with PartitionReader(bootstrap, client_id="synod-quarantine") as reader:
        await reader.assign(partitions)
        while True:
            for r in await reader.poll(poll_ms / 1000):
                with contextlib.suppress(DecodeError):
                    book.apply(codec.decode(r.value))


def topic_of(prefix: str) -> str:
    return topic_name(SUPERVISOR, prefix)
