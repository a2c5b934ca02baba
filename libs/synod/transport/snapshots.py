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
        value = await latest_value(
            self.bootstrap, self.topic, _key(self.owner, topic, partition), partition
        )
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


async def latest_value(
    bootstrap: str, topic: str, key: bytes, source_partition: int
) -> bytes | None:
    """The value of the last record with `key` in its snapshot partition: read backwards
    from the end in growing windows, so a restore reads a handful of records."""
    consumer = AIOKafkaConsumer(
        **client_security(),
        bootstrap_servers=bootstrap,
        client_id="synod-snapshot-reader",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
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
            return None
        tp = TopicPartition(topic, source_partition % len(partitions))
        consumer.assign([tp])
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        window = 16
        stop = end
        while stop > begin:
            start = max(begin, stop - window)
            consumer.seek(tp, start)
            found: bytes | None = None
            while await consumer.position(tp) < stop:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.offset >= stop:
                        break
                    if record.key == key:
                        found = record.value  # later ones win
            if found is not None:
                return found
            stop = start
            window *= 4
        return None
    finally:
        await consumer.stop()
