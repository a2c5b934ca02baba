"""The planner's snapshots: the records of its unfinished tasks, per task-log partition.

A task's state is the fold of its records (`synod.core.task.fold`), so a snapshot
of a partition is the records of the tasks on it that are not finished, each
task's in log order, and the offset below which every record of the partition
was folded. Restoring folds those records again and then the tail from the
offset: the same state a replay from offset 0 reaches, since folding a record
twice changes nothing (`seen`) and each task's records stay in order. Forwards
are not the snapshot's business: the consumer still delivers every record from
the group's commit, and a delivered record is forwarded whether or not it was
folded before.

A task leaves the snapshot, and the planner's memory, once every record it has
is below the snapshot's offset and it has an outcome that will not be
reopened (or no TaskSubmitted: a late record of a task that left already).
An `ap` outcome resting on a provisional decision stays until its Reconciled
record: an overturn after the heal must find the task's state. A later record
of a task that left (a hedge loser's result) finds a fresh machine, which does
nothing with it, as a task whose start retention deleted.

Snapshots go to synod.snapshots (compacted, one live record per partition),
owner the planner's group; a missing or unusable one means a replay from the
partition's first record, which is what the planner did before snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Protocol

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from synod.core.snapshot import Snapshot, SnapshotError, pack_records, unpack_records
from synod.core.task import Logged, TaskMachine
from synod.errors import DecodeError
from synod.service.host import ServiceContext
from synod.transport import KeyOrderedConsumer
from synod.transport.snapshots import RESTORES, SnapshotStore
from synod.transport.topics import SNAPSHOTS, TASK_EVENTS
from synod.wire import Codec

log = logging.getLogger("synod.agents")

SNAPSHOT_MAGIC = b"PLS1"  # the payload format of a planner snapshot


class Planner(Protocol):
    """What snapshots read and prune of the planner (`synod.roles.planner.service`)."""

    ctx: ServiceContext
    codec: Codec
    tasks: OrderedDict[str, TaskMachine]
    locks: dict[str, asyncio.Lock]
    partition_of: dict[str, int]
    consumer: KeyOrderedConsumer | None

    def machine(self, task_id: str) -> TaskMachine: ...


class PlannerSnapshotSettings(BaseSettings):
    """Snapshots of the planner's task state (SYNOD_PLANNER_*)."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_PLANNER_", extra="ignore")

    snapshots: bool = Field(default=True, description="write and restore task-state snapshots")
    snapshot_interval_s: float = Field(default=30.0, gt=0, description="between snapshots")


class PlannerSnapshots:
    """The records each task in memory holds, and the snapshots made of them."""

    def __init__(self, planner: Planner, settings: PlannerSnapshotSettings | None = None) -> None:
        self.planner = planner
        self.settings = settings or PlannerSnapshotSettings()
        ctx = planner.ctx
        self.group = f"{ctx.kafka.topic_prefix}synod.planner"
        self.store = SnapshotStore(
            ctx.kafka.bootstrap, ctx.topic(SNAPSHOTS), self.group, client_id=ctx.instance
        )
        self.records: dict[str, list[bytes]] = {}  # task -> its records folded, in order
        self.kept: dict[str, set[str]] = {}  # task -> the message ids in `records`
        self.last: dict[str, int] = {}  # task -> offset of its latest record folded
        self.folded_below: dict[int, int] = {}  # partition -> every record below is folded
        self.written: dict[int, int] = {}  # partition -> offset of its latest snapshot
        self.stats = {"written": 0, "restored": 0, "left_memory": 0}

    # ------------------------------------------------------------ bookkeeping

    def keep(self, task_id: str, offset: int, value: bytes | None, message_id: str) -> None:
        """A record of `task_id` was read from the log and folded: a snapshot holds the
        first copy of each message while the task runs. By id, not by whether the fold
        changed: the planner folds some of its own records before they are read back."""
        self.last[task_id] = max(offset, self.last.get(task_id, -1))
        kept = self.kept.setdefault(task_id, set())
        if value is not None and message_id not in kept:
            kept.add(message_id)
            self.records.setdefault(task_id, []).append(value)

    def forget(self, task_id: str) -> None:
        self.records.pop(task_id, None)
        self.kept.pop(task_id, None)
        self.last.pop(task_id, None)

    def rebuilding(self, partition: int) -> None:
        """An assignment began: until its rebuild ends, memory may be behind the group
        (another instance handled records meanwhile), so no snapshot of it."""
        self.folded_below.pop(partition, None)

    def rebuilt(self, partition: int, end: int) -> None:
        self.folded_below[partition] = end

    # ------------------------------------------------------------ restore

    async def restore(
        self, partitions: list[TopicPartition], ends: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """Fold each partition's latest snapshot; returns where to read the tail from
        (partitions without a usable snapshot are not in it: read from the start)."""
        starts: dict[TopicPartition, int] = {}
        for topic in dict.fromkeys(tp.topic for tp in partitions):
            mine = [tp for tp in partitions if tp.topic == topic]
            try:
                # One reader for the whole assignment (64 partitions at scale).
                loaded = await self.store.load_many(topic, [tp.partition for tp in mine])
            except Exception as exc:  # a replay is always correct, only slower
                log.warning("planner snapshots not read; replaying", extra={"error": repr(exc)})
                continue
            for tp in mine:
                found = self._usable(tp, loaded[tp.partition], ends[tp])
                if found is None:
                    continue
                offset, records = found
                self._fold(tp.partition, records)
                starts[tp] = offset
                self.written[tp.partition] = offset
                self.stats["restored"] += 1
        return starts

    def _usable(
        self, tp: TopicPartition, snapshot: Snapshot | None, end: int
    ) -> tuple[int, list[bytes]] | None:
        if snapshot is None:
            return None
        # Log start 0: a snapshot offset below the log start is sought and the
        # consumer starts at the log start, as a replay would.
        point = self.store.check(snapshot, 0, end)
        if point is None:
            return None
        try:
            if snapshot.payload[:4] != SNAPSHOT_MAGIC:
                raise ValueError(f"planner snapshot format {snapshot.payload[:4]!r}")
            return point.offset, unpack_records(snapshot.payload, 4)
        except ValueError as exc:
            RESTORES.labels(self.group, "undecodable").inc()
            log.warning(
                "planner snapshot unusable; replaying the partition from its beginning",
                extra={"partition": tp.partition, "error": str(exc)},
            )
            return None

    def _fold(self, partition: int, records: list[bytes]) -> None:
        planner = self.planner
        for value in records:
            try:
                envelope = planner.codec.decode(value)
            except DecodeError:
                continue  # it was folded (and decoded) once: a schema gone since
            if envelope.task_id is None:
                continue
            if planner.ctx.service.causal_clocks:
                planner.ctx.stamper.observe(planner.ctx.topic(TASK_EVENTS), envelope)
            planner.machine(envelope.task_id).step(Logged(envelope, replayed=True))
            planner.partition_of[envelope.task_id] = partition
            # Its offset is unknown here, but below the snapshot's: -1 says so.
            self.keep(envelope.task_id, -1, value, envelope.message_id)

    # ------------------------------------------------------------ write

    async def run(self) -> None:
        """Write a snapshot of each owned partition that moved on, every interval."""
        await self.store.start()
        try:
            while True:
                await asyncio.sleep(self.settings.snapshot_interval_s)
                await self.write_due()
        finally:
            await self.store.stop()

    async def write_due(self) -> int:
        """Snapshot every owned partition whose folded prefix grew; returns how many."""
        consumer = self.planner.consumer
        if consumer is None:
            return 0
        topic = self.planner.ctx.topic(TASK_EVENTS)
        written = 0
        for tp in sorted(consumer.assigned, key=lambda t: t.partition):
            if tp.topic != topic:
                continue
            if tp.partition not in self.folded_below:
                continue  # being rebuilt
            handled = consumer.handled_below(tp.topic, tp.partition)
            offset = max(self.folded_below[tp.partition], handled or 0)
            if offset <= self.written.get(tp.partition, 0):
                continue
            payload = SNAPSHOT_MAGIC + pack_records(self._records_of(tp.partition, offset))
            started = time.perf_counter()
            try:
                size = await self.store.save(tp.topic, tp.partition, offset, payload)
            except (KafkaError, SnapshotError) as exc:
                log.warning(
                    "planner snapshot not written",
                    extra={"partition": tp.partition, "error": repr(exc)},
                )
                continue
            self.written[tp.partition] = offset
            self.stats["written"] += 1
            written += 1
            log.info(
                "planner snapshot written",
                extra={
                    "partition": tp.partition,
                    "offset": offset,
                    "bytes": size,
                    "left_memory": self.stats["left_memory"],
                    "s": round(time.perf_counter() - started, 3),
                },
            )
        return written

    def _records_of(self, partition: int, offset: int) -> list[bytes]:
        """The records of the partition's unfinished tasks; finished ones leave memory."""
        planner = self.planner
        out: list[bytes] = []
        for task_id in [t for t, p in planner.partition_of.items() if p == partition]:
            machine = planner.tasks.get(task_id)
            lock = planner.locks.get(task_id)
            done = machine is None or machine.settled or machine.submitted is None
            if done and self.last.get(task_id, -1) < offset and not (lock and lock.locked()):
                planner.tasks.pop(task_id, None)
                planner.locks.pop(task_id, None)
                planner.partition_of.pop(task_id, None)
                self.forget(task_id)
                self.stats["left_memory"] += 1
                continue
            out.extend(self.records.get(task_id, ()))
        return out
