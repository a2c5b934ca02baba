"""The consensus service on Kafka: fold synod.votes, publish what the fold says.

One consumer in the group `synod.consensus` reads synod.votes. Each assigned
partition has a `PartitionFold`, rebuilt on assignment by reading the
partition from its first record: records below the group's committed offset
are folded silently (their outputs were published before that offset was
committed), the rest are folded live and their outputs published. Offsets are
committed only up to records whose outputs the broker has acknowledged, so a
crash at any point republishes at most outputs that are identical, under the
same ids, to the ones already out. A partition is folded by one task at a time,
in offset order (the concurrency of one per partition that the fold needs).

Snapshots: every `snapshot_interval_s`, a partition that folded at least
`snapshot_min_records` since its last snapshot writes its fold
(`PartitionFold.to_snapshot`, at the position whose outputs are all out) to
synod.snapshots. On assignment the latest snapshot is restored and only the
tail from its offset is folded, so failover takes time in proportion to the
work in flight, not to the partition's history. A missing, corrupt or stale
snapshot means a full replay from the first record (logged, and counted in
`synod_snapshot_restores_total`), which decides the same way, only slower.

Reachability (docs/cap.md): the supervisors' `Reachability` reports on
synod.heartbeats are read by every instance; a deadline marker carries the
electorate members the freshest report names reachable, or nothing when no
report is fresher than `reachability_fresh_s` (a supervisor cut off from the
broker reports nothing, so its silence never makes a voter look gone).

Time: a ticker compares each open ballot's deadline with the wall clock and,
once it has passed, appends a deadline marker to the task's partition. The
ballot ends when the fold reaches the marker, never on the clock directly, so
the log alone decides (docs/adr/0003-consensus-service-log-replay.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from synod.core.consensus.fold import FoldResult, Log, PartitionFold, Publish
from synod.core.consensus.ticker import REACHABILITY_FRESH_S, Marker, ReachabilityView, Ticker
from synod.core.resilience.backoff import RetryPolicy
from synod.core.snapshot import Snapshot, SnapshotError
from synod.errors import DecodeError
from synod.observability import record_consumer_lag
from synod.service.host import ServiceContext
from synod.transport import DeadLetterPublisher, RawRecord, Received
from synod.transport.clients import AIOKafkaConsumer, kafka_consumer
from synod.transport.snapshots import RESTORES, RestorePoint, SnapshotStore
from synod.transport.topics import DLQ, HEARTBEATS, SNAPSHOTS, TASK_EVENTS, VOTES, TopicSpec
from synod.wire import Codec, Envelope

log = logging.getLogger(__name__)

GROUP = "synod.consensus"

# An output is retried until the broker takes it (see _retry); the random
# source only spreads the retries.
PUBLISH_RETRY = RetryPolicy(base_s=0.1, cap_s=5.0, max_attempts=None)
_jitter = random.Random()

# The fold names the log each output belongs to; these are their topics.
TOPIC_OF: dict[Log, TopicSpec] = {"votes": VOTES, "task-events": TASK_EVENTS}

EQUIVOCATIONS = Counter(
    "synod_consensus_equivocations_total",
    "Voters caught sending two different votes in one ballot",
    ["instance"],
)
DECISIONS = Counter(
    "synod_consensus_decisions_total",
    "Decisions published (live folds only; a refold after a crash counts again)",
    ["instance", "outcome"],
)
VOTES_IGNORED = Counter(
    "synod_consensus_votes_ignored_total",
    "Votes the core ignored, by reason",
    ["instance", "reason"],
)
MARKERS = Counter(
    "synod_consensus_deadline_markers_total",
    "Deadline markers appended to the vote log",
    ["instance"],
)


class ConsensusSettings(BaseSettings):
    """Knobs that change when things happen, never what is decided."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_CONSENSUS_", extra="ignore")

    tick_interval_s: float = Field(default=0.2, gt=0, description="how often deadlines are checked")
    commit_interval_s: float = Field(default=0.5, gt=0)
    fetch_max_records: int = Field(default=500, ge=1)
    snapshots: bool = Field(default=True, description="write and restore fold snapshots")
    snapshot_interval_s: float = Field(default=30.0, gt=0)
    snapshot_min_records: int = Field(default=1_000, ge=1)
    reachability_fresh_s: float = Field(
        default=REACHABILITY_FRESH_S,
        gt=0,
        description="older supervisor reports say nothing about now",
    )


@dataclass
class _Partition:
    ticker: Ticker  # the fold and the ballots it has a marker out for
    live_from: int  # records at or after this offset are folded live (outputs published)
    position: int  # next offset to fold
    committed: int  # last offset committed to the group
    snapshot_at: int = 0  # offset of the last snapshot written or restored
    snapshot_time: float = 0.0  # monotonic time it was written

    @property
    def fold(self) -> PartitionFold:
        return self.ticker.fold

    @property
    def rebuilding(self) -> bool:
        return self.position < self.live_from


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: ConsensusService) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner._on_assigned(assigned)


class ConsensusService:
    def __init__(
        self,
        ctx: ServiceContext,
        settings: ConsensusSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.settings = settings or ConsensusSettings()
        self.clock = clock
        self.codec = Codec()
        self.topic = ctx.topic(VOTES)
        self.group = f"{ctx.kafka.topic_prefix}{GROUP}"
        self.dead_letter = DeadLetterPublisher(ctx.publisher, ctx.topic(DLQ), ctx.sender)
        self._partitions: dict[int, _Partition] = {}
        # Folds of partitions we gave up, kept in case they come back unchanged.
        self._parked: dict[int, _Partition] = {}
        # Bumped by every rebalance, so a batch fetched across one is not folded.
        self._epoch = 0
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self.snapshots = SnapshotStore(
            ctx.kafka.bootstrap, ctx.topic(SNAPSHOTS), self.group, client_id=ctx.instance
        )
        # The freshest supervisor report, whose reachable voters a marker names.
        self.reachability = ReachabilityView(self.settings.reachability_fresh_s)
        self.stats = {
            "folded": 0,
            "rebuilt": 0,
            "published": 0,
            "markers": 0,
            "rebalances": 0,
            "snapshots": 0,
            "restored": 0,
        }

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        kafka = self.ctx.kafka
        consumer = kafka_consumer(
            kafka.bootstrap,
            group_id=self.group,
            client_id=self.ctx.instance,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
            max_poll_interval_ms=kafka.max_poll_interval_ms,
            group_instance_id=self.ctx.instance if kafka.static_membership else None,
        )
        self._consumer = consumer
        if self.settings.snapshots:
            await self.snapshots.start()
        consumer.subscribe([self.topic], listener=_Listener(self))
        await consumer.start()
        ticker = asyncio.create_task(self._tick_loop(), name="consensus-ticker")
        committer = asyncio.create_task(self._commit_loop(), name="consensus-committer")
        log.info("consensus started", extra={"topic": self.topic, "group": self.group})
        try:
            await self._fold_loop(consumer)
        finally:
            ticker.cancel()
            committer.cancel()
            await asyncio.gather(ticker, committer, return_exceptions=True)
            # Commit what is published, then leave the group so the partitions
            # move at once instead of after the session timeout.
            with contextlib.suppress(Exception):
                async with self._lock:
                    await self._commit(list(self._partitions))
            await consumer.stop()
            await self.snapshots.stop()
            log.info("consensus stopped", extra=dict(self.stats))

    # ------------------------------------------------------------ folding

    async def _fold_loop(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            epoch = self._epoch
            try:
                batch = await consumer.getmany(
                    timeout_ms=100, max_records=self.settings.fetch_max_records
                )
            except KafkaError as exc:
                log.warning("fetch failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
                continue
            if not batch:
                continue
            async with self._lock:
                if epoch != self._epoch:
                    # A rebalance ran while we fetched: the batch may predate its
                    # seeks or follow them. Either way, fetch again from where each
                    # fold stands; dropping it alone would lose records.
                    for partition, part in self._partitions.items():
                        consumer.seek(TopicPartition(self.topic, partition), part.position)
                    continue
                await self._fold_batch(batch)

    async def _fold_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        pending: list[Publish] = []
        dead: list[tuple[RawRecord, str]] = []
        advanced: dict[int, int] = {}
        for tp, records in batch.items():
            part = self._partitions.get(tp.partition)
            if part is None:
                continue
            for record in records:
                if record.offset < part.position:
                    continue  # folded already (a refetch after a seek)
                live = record.offset >= part.live_from
                result = self._fold_record(part, record, live)
                if live:
                    pending.extend(result.publish)
                    if result.invalid is not None:
                        dead.append((_raw(record), result.invalid))
                advanced[tp.partition] = record.offset + 1
                self.stats["folded"] += 1
                if not live:
                    self.stats["rebuilt"] += 1
        await self._publish_all(pending)
        for raw, reason in dead:
            await _retry(
                functools.partial(self.dead_letter, raw, "invalid_proposal", reason, "permanent")
            )
        # Only now: a commit must never pass a record whose outputs are not out.
        for partition, position in advanced.items():
            self._partitions[partition].position = position

    def _fold_record(self, part: _Partition, record: Any, live: bool) -> FoldResult:
        try:
            envelope: Envelope[Any] = self.codec.decode(record.value)
        except DecodeError as exc:
            if live:
                log.warning(
                    "undecodable record skipped", extra={"offset": record.offset, "error": str(exc)}
                )
            return FoldResult()
        # Not through the host either: check who wrote it here. The verdict depends
        # on the record and the keyring only, so every fold of the log skips the same.
        ctx = self.ctx
        if not ctx.authorship.check(self.topic, envelope, ctx.role, ctx.instance, report=live):
            return FoldResult()
        # This loop reads its own consumer, not the host's: merge the clocks here, so
        # what the batch makes us publish happens-after every record folded into it.
        self.ctx.stamper.observe(self.topic, envelope)
        result = part.ticker.apply(envelope)
        if not live:
            return result
        instance = self.ctx.instance
        for eq in result.equivocations:
            EQUIVOCATIONS.labels(instance).inc()
            log.warning(
                "equivocation",
                extra={
                    "task_id": envelope.task_id,
                    "proposal_id": eq.proposal_id,
                    "ballot": eq.ballot,
                    "voter": eq.voter,
                },
            )
        for ignored in result.ignored:
            VOTES_IGNORED.labels(instance, ignored.reason).inc()
        for nb in result.new_ballots:
            log.info(
                "new ballot",
                extra={
                    "task_id": envelope.task_id,
                    "proposal_id": nb.proposal_id,
                    "ballot": nb.ballot,
                    "reason": nb.reason,
                },
            )
        if result.decided is not None:
            outcome = result.decided.outcome
            kind = outcome if outcome in ("rejected", "no_quorum") else "candidate"
            DECISIONS.labels(instance, kind).inc()
            log.info(
                "decided",
                extra={
                    "task_id": envelope.task_id,
                    "proposal_id": result.decided.proposal_id,
                    "outcome": outcome,
                    "ballot": result.decided.ballot,
                },
            )
        if result.invalid is not None:
            log.warning(
                "invalid proposal", extra={"task_id": envelope.task_id, "error": result.invalid}
            )
        return result

    async def _publish_all(self, pending: list[Publish]) -> None:
        if not pending:
            return
        await asyncio.gather(*(self._publish(p) for p in pending))
        self.stats["published"] += len(pending)

    async def _publish(self, item: Publish) -> None:
        await _retry(lambda: self.ctx.publish(TOPIC_OF[item.to], item.envelope))

    # ------------------------------------------------------------ reachability

    async def on_heartbeat_record(self, msg: Received) -> None:
        self.reachability.heard(msg.envelope)

    # ------------------------------------------------------------ time

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval_s)
            now = self.clock()
            markers: list[tuple[_Partition, Marker]] = []
            async with self._lock:
                for part in self._partitions.values():
                    if part.rebuilding:
                        continue  # its open ballots are history, not pending
                    due = part.ticker.due(now, self.ctx.sender, self.reachability)
                    markers.extend((part, marker) for marker in due)
            for part, marker in markers:
                try:
                    await self.ctx.publish(VOTES, marker.envelope)
                    MARKERS.labels(self.ctx.instance).inc()
                    self.stats["markers"] += 1
                except KafkaError as exc:
                    part.ticker.failed(marker)  # the next tick tries again
                    log.warning("deadline marker not published", extra={"error": repr(exc)})

    # ------------------------------------------------------------ offsets

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.commit_interval_s)
            async with self._lock:
                await self._commit(list(self._partitions))
                self._record_lag()
            if self.settings.snapshots:
                await self._snapshot_due()

    def _record_lag(self) -> None:
        """synod_consumer_lag_messages for the vote log: its end minus the fold's position."""
        assert self._consumer is not None
        for partition, part in self._partitions.items():
            tp = TopicPartition(self.topic, partition)
            end = self._consumer.last_stable_offset(tp) or self._consumer.highwater(tp)
            if end is not None:
                record_consumer_lag(self.group, self.topic, partition, end - part.position)

    async def _snapshot_due(self, force: bool = False) -> None:
        """Write the snapshots that are due. Under the lock the fold and its position
        agree (a batch is folded and published whole), so the state is taken there;
        the write happens outside it."""
        now = time.monotonic()
        due: list[tuple[_Partition, int, int, bytes]] = []
        async with self._lock:
            for partition, part in self._partitions.items():
                if part.rebuilding or part.position <= part.snapshot_at:
                    continue
                enough = part.position - part.snapshot_at >= self.settings.snapshot_min_records
                if force or (
                    enough and now - part.snapshot_time >= self.settings.snapshot_interval_s
                ):
                    due.append((part, partition, part.position, part.fold.to_snapshot()))
        for part, partition, offset, payload in due:
            try:
                await self.snapshots.save(self.topic, partition, offset, payload)
            except (KafkaError, SnapshotError) as exc:
                log.warning(
                    "snapshot not written", extra={"partition": partition, "error": repr(exc)}
                )
                continue
            part.snapshot_at = max(part.snapshot_at, offset)
            part.snapshot_time = now
            self.stats["snapshots"] += 1

    async def _commit(self, partitions: list[int]) -> None:
        assert self._consumer is not None
        offsets = {}
        for partition in partitions:
            part = self._partitions.get(partition)
            if part is not None and part.position > part.committed:
                offsets[TopicPartition(self.topic, partition)] = part.position
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # A rebalance under way: the revocation commits instead, or the new
            # owner refolds live from the older commit (same outputs again).
            log.info("commit failed", extra={"error": repr(exc)})
            return
        for tp, offset in offsets.items():
            self._partitions[tp.partition].committed = offset

    # ------------------------------------------------------------ rebalances

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            self.stats["rebalances"] += 1
            mine = [tp.partition for tp in revoked if tp.topic == self.topic]
            await self._commit(mine)
            for partition in mine:
                record_consumer_lag(self.group, self.topic, partition, None)
                part = self._partitions.pop(partition, None)
                if part is not None and part.committed == part.position:
                    self._parked[partition] = part
            self._epoch += 1
            log.info("partitions revoked", extra={"partitions": sorted(mine)})

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        async with self._lock:
            mine = sorted(
                (tp for tp in assigned if tp.topic == self.topic), key=lambda t: t.partition
            )
            starts = await consumer.beginning_offsets(mine) if mine else {}
            ends = await consumer.end_offsets(mine) if mine else {}
            committed = {tp: await consumer.committed(tp) for tp in mine}
            restored: dict[int, tuple[PartitionFold, RestorePoint]] = {}
            if self.settings.snapshots:
                wanted = [tp for tp in mine if tp.partition not in self._parked]
                restored = await self._restore(wanted, starts, ends)
            # No await from here on: the seeks and the epoch bump are one step, so
            # a fetch either precedes them (and is refetched) or follows them.
            reused = []
            for tp in mine:
                parked = self._parked.pop(tp.partition, None)
                if parked is not None and parked.position == committed[tp]:
                    # Nobody folded it meanwhile: our fold is exactly where the group is.
                    self._partitions[tp.partition] = parked
                    consumer.seek(tp, parked.position)
                    reused.append(tp.partition)
                    continue
                start = starts[tp]
                live_from = committed[tp] if committed[tp] is not None else start
                fold = PartitionFold(self.ctx.sender)
                snapshot_at = 0
                if tp.partition in restored:
                    # Outputs of the records below the snapshot's offset were out
                    # before it was written: fold silently only up to the commit.
                    fold, point = restored[tp.partition]
                    start = snapshot_at = point.offset
                self._partitions[tp.partition] = _Partition(
                    ticker=Ticker(fold),
                    live_from=live_from,
                    position=start,
                    committed=live_from,
                    snapshot_at=snapshot_at,
                    snapshot_time=time.monotonic(),
                )
                consumer.seek(tp, start)
            self._parked.clear()
            self._epoch += 1
            log.info(
                "partitions assigned",
                extra={
                    "partitions": [tp.partition for tp in mine],
                    "reused": reused,
                    "restored": {p: point.offset for p, (_, point) in restored.items()},
                    "live_from": {
                        tp.partition: self._partitions[tp.partition].live_from for tp in mine
                    },
                },
            )

    async def _restore(
        self,
        wanted: list[TopicPartition],
        starts: Mapping[TopicPartition, int],
        ends: Mapping[TopicPartition, int],
    ) -> dict[int, tuple[PartitionFold, RestorePoint]]:
        """Each partition's fold from its latest snapshot; a partition left out replays
        from the start. One reader for the whole assignment."""
        if not wanted:
            return {}
        try:
            loaded = await self.snapshots.load_many(self.topic, [tp.partition for tp in wanted])
        except KafkaError as exc:
            log.warning("snapshot not read; replaying", extra={"error": repr(exc)})
            return {}
        restored: dict[int, tuple[PartitionFold, RestorePoint]] = {}
        for tp in wanted:
            found = self._usable(tp.partition, loaded[tp.partition], starts[tp], ends[tp])
            if found is not None:
                restored[tp.partition] = found
        return restored

    def _usable(
        self, partition: int, snapshot: Snapshot | None, log_start: int, log_end: int
    ) -> tuple[PartitionFold, RestorePoint] | None:
        if snapshot is None:
            return None
        point = self.snapshots.check(snapshot, log_start, log_end)
        if point is None:
            return None
        try:
            fold = PartitionFold.from_snapshot(self.ctx.sender, snapshot.payload)
        except ValueError as exc:
            RESTORES.labels(self.group, "undecodable").inc()
            log.warning(
                "snapshot unusable; replaying the partition from its beginning",
                extra={"partition": partition, "reason": "undecodable", "error": str(exc)},
            )
            return None
        self.stats["restored"] += 1
        return fold, point


async def _retry(send: Callable[[], Awaitable[Any]]) -> None:
    """Send until the broker takes it. Never give up on an output: its record stays
    uncommitted meanwhile, and a successor would have to send the same thing anyway."""
    attempt = 0
    while True:
        try:
            await send()
            return
        except KafkaError as exc:
            log.warning("publish failed; retrying", extra={"error": repr(exc)})
            delay = PUBLISH_RETRY.next_delay(attempt, "transient", _jitter)
            assert delay is not None  # no attempt limit
            await asyncio.sleep(delay)
            attempt += 1


def _raw(record: Any) -> RawRecord:
    return RawRecord(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        tuple(record.headers or ()),
        record.timestamp,
    )


def install(ctx: ServiceContext, on_failure: Callable[[BaseException], None]) -> ConsensusService:
    """Run the service as a background job of `run_service`; `on_failure` hears of its death.

    The runtime watches only its own consumers, so a fold loop that dies must
    say so, or the process would stay up holding partitions it no longer folds.
    """
    service = ConsensusService(ctx)
    # Every instance reads every report: its own group, from the present on.
    ctx.consume(
        f"{GROUP}.reachability.{ctx.instance}",
        [HEARTBEATS],
        service.on_heartbeat_record,
        auto_offset_reset="latest",
    )

    async def job() -> None:
        try:
            await service.run()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.exception("consensus loop failed")
            on_failure(exc)

    ctx.background.append(job)
    return service
