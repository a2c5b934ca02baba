"""The planner's reader of quarantines: `synod.supervisor` into a `QuarantineBook`.

Every planner instance reads the whole compacted topic from the beginning (no
consumer group: each needs every instance's state) and keeps folding new
notices into its book (`synod.core.quarantine`) until cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from synod.core.quarantine import QuarantineBook
from synod.errors import ConfigError, DecodeError
from synod.transport.reader import PartitionReader, topic_partitions
from synod.transport.topics import SUPERVISOR, topic_name
from synod.wire import Codec

log = logging.getLogger("synod.supervisor")


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
