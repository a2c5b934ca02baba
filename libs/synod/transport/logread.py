"""Read a whole Synod log from the broker, for `synod check` and tests that end with it.

Every task-scoped topic of the catalogue (not the consensus changelog, which
holds faust's tables, nor heartbeats, which belong to no task), all
partitions, from the beginning up to the end offsets when reading started,
without a consumer group (nothing is committed; reading changes nothing).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from synod.core.check import LogRecord
from synod.errors import DecodeError, SynodError
from synod.transport.admin import partition_counts
from synod.transport.authorship import Keyring, verdict
from synod.transport.security import client_security
from synod.transport.topics import CATALOGUE, CONSENSUS_STATE, HEARTBEATS, topic_name
from synod.wire import Codec

CHECKED_TOPICS = tuple(t.name for t in CATALOGUE if t not in (CONSENSUS_STATE, HEARTBEATS))


@dataclass
class LogRead:
    records: list[LogRecord] = field(default_factory=list)
    undecodable: Counter[str] = field(default_factory=Counter)  # topic -> records skipped
    # topic -> records whose author may not have sent them (with a keyring): no
    # service acted on them, so the check leaves them out too.
    forged: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


async def read_log(
    bootstrap: str,
    prefix: str = "",
    *,
    topics: tuple[str, ...] = CHECKED_TOPICS,
    timeout_s: float = 120.0,
    keyring: Keyring | None = None,
) -> LogRead:
    """Every record of `topics` (catalogue names) up to their current ends, decoded."""
    started = time.monotonic()
    names = {topic_name(t, prefix): t for t in topics}
    counts = await partition_counts(bootstrap, list(names))
    parts = [TopicPartition(n, p) for n, count in counts.items() for p in range(count)]
    consumer = AIOKafkaConsumer(
        **client_security(),
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        # What a user was told happened: aborted transactions are not the log.
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    out, codec = LogRead(), Codec()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        pending = {tp for tp in parts if ends[tp] > 0}
        deadline = started + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise SynodError(f"reading the log took over {timeout_s:g} s")
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=5_000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    try:
                        envelope = codec.decode(r.value or b"")
                    except DecodeError:
                        out.undecodable[names[tp.topic]] += 1
                        continue
                    if keyring is not None and verdict(keyring, envelope) is not None:
                        out.forged[names[tp.topic]] += 1
                        continue
                    out.records.append(LogRecord(names[tp.topic], tp.partition, r.offset, envelope))
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    out.seconds = time.monotonic() - started
    return out
