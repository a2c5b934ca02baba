"""The planner's reader of heartbeats: who holds each partition of the step topics.

Every planner instance reads `synod.heartbeats` (no consumer group: each needs
every worker's) from a little before it started, and keeps folding them into
an `OwnerBook` (`synod.core.task.lanes`) until cancelled. `Lanes.owners()` is
what the planner hands each task's machine (`Owners`), so a hedge copy's key
is picked to reach another worker than the straggler's (docs/cap.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka.errors import KafkaError

from synod.core.task import Owners
from synod.core.task.lanes import OwnerBook
from synod.errors import ConfigError, DecodeError, SynodError
from synod.transport.admin import partition_counts
from synod.transport.reader import PartitionReader, Since, topic_partitions
from synod.transport.topics import HEARTBEATS, STEPS_CODER, STEPS_RESEARCHER, topic_name
from synod.wire import Codec
from synod.wire.messages import utc_now

log = logging.getLogger("synod.agents")

BACKLOG_S = 30.0  # heartbeats read back at start: every live worker has sent some


class Lanes:
    """The owner maps of the step topics, rebuilt only when a heartbeat changed them."""

    def __init__(self) -> None:
        self.book = OwnerBook()
        self.topics: dict[str, str] = {}  # role -> its step topic (set by follow)
        self.partitions: dict[str, int] = {}  # role -> its step topic's partition count
        self._cached: tuple[int, Owners] | None = None

    def owners(self) -> Owners:
        version = self.book.version
        if self._cached is None or self._cached[0] != version:
            maps = {
                role: self.book.owner_map(self.topics[role], n, utc_now())
                for role, n in self.partitions.items()
            }
            self._cached = (version, Owners(maps))
        return self._cached[1]

    async def follow(self, bootstrap: str, prefix: str, *, poll_ms: int = 500) -> None:
        """Read heartbeats into the book, until cancelled."""
        codec = Codec()
        heartbeats = topic_name(HEARTBEATS, prefix)
        self.topics = {
            "coder": topic_name(STEPS_CODER, prefix),
            "researcher": topic_name(STEPS_RESEARCHER, prefix),
        }
        partitions = None
        for _ in range(60):  # the topics may be created a moment after we start
            with contextlib.suppress(ConfigError):
                partitions = await topic_partitions(bootstrap, [heartbeats])
                counts = await partition_counts(bootstrap, list(self.topics.values()))
                self.partitions = {role: counts[t] for role, t in self.topics.items()}
                break
            await asyncio.sleep(1.0)
        if not partitions:
            log.warning("no heartbeats topic: hedges keep their own keys")
            return
        since = Since(int((time.time() - BACKLOG_S) * 1000))
        while True:
            try:
                async with PartitionReader(bootstrap, client_id="synod-lanes") as reader:
                    await reader.assign(partitions, since)
                    while True:
                        for r in await reader.poll(poll_ms / 1000):
                            with contextlib.suppress(DecodeError):
                                self.book.apply(codec.decode(r.value))
            except (SynodError, KafkaError) as exc:  # the broker out of reach: read again, from now
                log.warning("reading heartbeats failed", extra={"error": repr(exc)})
                since = Since(int((time.time() - BACKLOG_S) * 1000))
                await asyncio.sleep(1.0)
