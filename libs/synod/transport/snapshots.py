"""Snapshots on Kafka: write a service's state for a partition, read the latest back.

The topic `synod.snapshots` is compacted and keyed by (owner, source topic,
source partition), so it holds one live snapshot per stateful partition however
long the source history grows. The snapshot of source partition p goes to
snapshot partition p mod N, and a restore reads only the tail of that partition
(a few records: the latest snapshot of each owner sharing it), never its
history.

Restore, then replay: `restore_point` returns the snapshot and the offset to
fold from, or None, and the caller folds from the beginning instead. A missing
snapshot is normal (a new install); a corrupt, foreign or stale one (an offset
beyond the source partition's end: the topic was recreated) is logged and
counted in `synod_snapshot_restores_total{outcome}`, and the caller replays
everything, which is always correct, only slower.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from prometheus_client import Counter, Histogram

from synod.core.snapshot import Snapshot, SnapshotError, decode_snapshot, encode_snapshot
from synod.core.snapshot import snapshot_key as _key
from synod.transport.security import client_security

log = logging.getLogger("synod.transport.snapshots")

RESTORES = Counter(
    "synod_snapshot_restores_total",
    "Restores attempted, by outcome (restored, missing, corrupt, version, stale, foreign)",
    ["owner", "outcome"],
)
WRITES = Counter("synod_snapshot_writes_total", "Snapshots written", ["owner"])
SNAPSHOT_BYTES = Histogram(
    "synod_snapshot_size_bytes",
    "Size of written snapshots (compressed)",
    ["owner"],
    buckets=(1e3, 1e4, 1e5, 1e6, 4e6, 16e6),
)

# Big enough for the state of a busy partition; the topic's max.message.bytes matches.
MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class RestorePoint:
    snapshot: Snapshot
    offset: int  # fold from here: the snapshot's offset, raised to the log start


class SnapshotStore:
    """Writes and reads one owner's snapshots on the snapshot topic."""

    def __init__(self, bootstrap: str, topic: str, owner: str, *, client_id: str = "synod") -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.owner = owner
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitions: int | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            **client_security(),
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.client_id}-snapshots",
            acks="all",
            enable_idempotence=True,
            compression_type=None,  # the frame is compressed already
            max_request_size=MAX_SNAPSHOT_BYTES + 64 * 1024,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _count(self) -> int:
        assert self._producer is not None
        if self._partitions is None:
            self._partitions = len(await self._producer.partitions_for(self.topic))
        return self._partitions

    async def save(self, topic: str, partition: int, offset: int, payload: bytes) -> int:
        """Write the state of `topic`/`partition` folded up to `offset`; returns its size.

        Raises SnapshotError("too_large") instead of sending what the topic refuses."""
        if self._producer is None:
            raise RuntimeError("SnapshotStore.start() first")
        data = encode_snapshot(Snapshot(self.owner, topic, partition, offset, payload))
        if len(data) > MAX_SNAPSHOT_BYTES:
            raise SnapshotError("too_large", f"snapshot of {len(data)} bytes exceeds the limit")
        target = partition % await self._count()
        await self._producer.send_and_wait(
            self.topic, data, key=_key(self.owner, topic, partition), partition=target
        )
        WRITES.labels(self.owner).inc()
        SNAPSHOT_BYTES.labels(self.owner).observe(len(data))
        return len(data)

    async def load(self, topic: str, partition: int) -> Snapshot | None:
        """The latest snapshot of `topic`/`partition`, or None (missing or unusable:
        logged and counted)."""
        return (await self.load_many(topic, [partition]))[partition]

    async def load_many(self, topic: str, partitions: Iterable[int]) -> dict[int, Snapshot | None]:
        """The latest snapshot of each of `topic`'s `partitions` (None where missing or
        unusable: logged and counted), read with one reader: an assignment of 64
        partitions is one connection and a few fetches, not 64 of each."""
        wanted = list(dict.fromkeys(partitions))
        values = await latest_values(
            self.bootstrap, self.topic, {p: _key(self.owner, topic, p) for p in wanted}
        )
        return {p: self._parse(values[p], topic, p) for p in wanted}

    def _parse(self, value: bytes | None, topic: str, partition: int) -> Snapshot | None:
        if value is None:
            RESTORES.labels(self.owner, "missing").inc()
            return None
        try:
            snapshot = decode_snapshot(value)
        except SnapshotError as exc:
            self._unusable(exc.reason, str(exc), topic, partition)
            return None
        if (snapshot.owner, snapshot.topic, snapshot.partition) != (self.owner, topic, partition):
            self._unusable("foreign", "the snapshot names another partition", topic, partition)
            return None
        return snapshot

    def _unusable(self, reason: str, message: str, topic: str, partition: int) -> None:
        RESTORES.labels(self.owner, reason).inc()
        log.warning(
            "snapshot unusable; replaying the partition from its beginning",
            extra={
                "owner": self.owner,
                "topic": topic,
                "partition": partition,
                "reason": reason,
                "error": message,
            },
        )
        return None

    def check(self, snapshot: Snapshot, log_start: int, log_end: int) -> RestorePoint | None:
        """Whether `snapshot` fits the source partition now; counts the outcome."""
        if snapshot.offset > log_end:
            self._unusable(
                "stale",
                f"snapshot offset {snapshot.offset} is past the partition's end {log_end}",
                snapshot.topic,
                snapshot.partition,
            )
            return None
        RESTORES.labels(self.owner, "restored").inc()
        # Records below the log start were deleted by retention: a full replay
        # would not see them either.
        return RestorePoint(snapshot, max(snapshot.offset, log_start))


# A restore reads a handful of records and never waits for new ones: with
# aiokafka's 500 ms default, each seek back to a wider window first waited out
# the long poll already sent at the old position (1 s a restore, and a
# planner's 64 partitions, one reader each at once, 11-16 s on 2 cores).
_FETCH_WAIT_MS = 20


async def latest_value(
    bootstrap: str, topic: str, key: bytes, source_partition: int
) -> bytes | None:
    """The value of the last record with `key` in its snapshot partition."""
    found = await latest_values(bootstrap, topic, {source_partition: key})
    return found[source_partition]


async def latest_values(
    bootstrap: str, topic: str, keys: Mapping[int, bytes]
) -> dict[int, bytes | None]:
    """For each source partition, the value of the last record with its key in the
    snapshot partition that holds it; one reader for all of them. Each snapshot
    partition is read backwards from its end in growing windows, so a restore reads
    a handful of records, never the partition's history."""
    out: dict[int, bytes | None] = dict.fromkeys(keys)
    if not keys:
        return out
    consumer = AIOKafkaConsumer(
        **client_security(),
        bootstrap_servers=bootstrap,
        client_id="synod-snapshot-reader",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_wait_ms=_FETCH_WAIT_MS,
        max_partition_fetch_bytes=MAX_SNAPSHOT_BYTES + 64 * 1024,
        fetch_max_bytes=MAX_SNAPSHOT_BYTES + 64 * 1024,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            log.warning("no snapshot topic", extra={"topic": topic})
            return out
        wanted: dict[TopicPartition, dict[bytes, int]] = {}
        for source, key in keys.items():
            tp = TopicPartition(topic, source % len(partitions))
            wanted.setdefault(tp, {})[key] = source
        consumer.assign(list(wanted))
        begins = await consumer.beginning_offsets(list(wanted))
        ends = await consumer.end_offsets(list(wanted))
        for tp, by_key in wanted.items():
            for key, value in (
                await _scan_back(consumer, tp, begins[tp], ends[tp], by_key)
            ).items():
                out[by_key[key]] = value
        return out
    finally:
        await consumer.stop()


async def _scan_back(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    begin: int,
    end: int,
    by_key: Mapping[bytes, int],
) -> dict[bytes, bytes]:
    """The last value of each key of `by_key` in `tp` below `end`, windows widening back."""
    found: dict[bytes, bytes] = {}
    window = 16
    stop = end
    while stop > begin and len(found) < len(by_key):
        start = max(begin, stop - window)
        consumer.seek(tp, start)
        here: dict[bytes, bytes] = {}
        while await consumer.position(tp) < stop:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.offset >= stop:
                    break
                if record.key in by_key and record.key not in found:
                    here[record.key] = record.value  # later ones win
        found.update(here)
        stop = start
        window *= 4
    return found
