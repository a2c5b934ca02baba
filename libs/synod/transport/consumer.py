"""The Kafka consumer: key-ordered concurrency, safe commits, clean rebalances.

- The fetch loop never awaits a handler: records go to the `Dispatcher`, which
  runs handlers as tasks. A slow LLM call can never make the consumer miss
  `max.poll.interval.ms`.
- Commits are manual: per partition, the lowest unfinished offset, with the
  offsets finished beyond it encoded in the commit metadata. On assignment the
  metadata is read back (through the admin client: `consumer.committed()` drops
  it) and those offsets are skipped.
- Back-pressure: a partition is paused while its buffer, or its metadata, is
  near its limit, and resumed when it drains.
- `on_assigned` (a state rebuild) runs beside the group's heartbeats, not in
  aiokafka's callback (which sends none): the new partitions' records are held
  until it ends, and a revocation cancels it.
- On revocation: stop dispatching, let in-flight handlers finish within a
  bound (then cancel them), commit, and drop the partition's lane, so late
  results of the old assignment are ignored.
- `stop()` (wired to SIGTERM/SIGINT by `serve`): stop fetching, drain within a
  bound, commit, leave the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from synod.core.resilience.backoff import RetryPolicy
from synod.observability import record_consumer_lag
from synod.transport.dispatcher import (
    DeadLetterSink,
    Dispatcher,
    DispatchStats,
    Handler,
    Lane,
    RawRecord,
)
from synod.transport.offsets import PartitionOffsets, decode_finished
from synod.transport.security import client_security
from synod.wire import Codec

log = logging.getLogger("synod.transport")

# Reading the group's committed metadata after a rebalance: 4 retries, then go
# on without the skip list. The random source only spreads the retries.
METADATA_READ_RETRY = RetryPolicy(base_s=0.2, cap_s=1.0, max_attempts=4)
_jitter = random.Random()

# Called with newly assigned partitions before any of their records is handled.
AssignedHook = Callable[[list[TopicPartition]], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerConfig:
    concurrency: int = 200  # handlers in flight across all partitions
    max_buffered_per_partition: int = 2_000  # queued + in flight; then pause
    resume_fraction: float = 0.5  # resume when the buffer falls below this share
    metadata_pause_at: float = 0.8  # pause when commit metadata reaches this share of 4 KB
    drain_timeout_s: float = 10.0  # on revocation and shutdown
    commit_interval_s: float = 0.2
    # The lag gauge is for dashboards: once a second is enough, and a worker's
    # 20 ms commit cadence would otherwise poll every lane's position 50 times a second.
    lag_interval_s: float = 1.0
    fetch_timeout_ms: int = 100
    fetch_max_records: int = 500
    dedup_capacity: int = 100_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    max_poll_interval_ms: int = 300_000
    group_instance_id: str | None = None  # static membership (KIP-345) when set
    auto_offset_reset: str = "earliest"
    # Outputs of transactional producers (decisions) must not be seen before
    # their transaction commits.
    isolation_level: str = "read_committed"


@dataclass
class CommitStats:
    commits: int = 0
    commit_failures: int = 0
    metadata_truncations: int = 0
    pauses: int = 0
    unowned_records: int = 0  # fetched before the lane opened, or while revoking: rewound


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KeyOrderedConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner._on_assigned(assigned)


class KeyOrderedConsumer:
    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: list[str],
        handler: Handler,
        *,
        dead_letter: DeadLetterSink,
        config: ConsumerConfig | None = None,
        codec: Codec | None = None,
        client_id: str = "synod",
        on_assigned: AssignedHook | None = None,
    ) -> None:
        self.config = cfg = config or ConsumerConfig()
        self.on_assigned = on_assigned
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.topics = topics
        self.dispatcher = Dispatcher(
            handler,
            dead_letter,
            codec=codec,
            concurrency=cfg.concurrency,
            dedup_capacity=cfg.dedup_capacity,
        )
        self.dispatcher.group = group_id
        self.commit_stats = CommitStats()
        self._consumer = AIOKafkaConsumer(
            **client_security(),
            bootstrap_servers=bootstrap,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=cfg.auto_offset_reset,
            session_timeout_ms=cfg.session_timeout_ms,
            heartbeat_interval_ms=cfg.heartbeat_interval_ms,
            max_poll_interval_ms=cfg.max_poll_interval_ms,
            isolation_level=cfg.isolation_level,
            group_instance_id=cfg.group_instance_id,
        )
        self._admin = AIOKafkaAdminClient(
            **client_security(), bootstrap_servers=bootstrap, client_id=client_id
        )
        self._commit_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._fetch_task: asyncio.Task[None] | None = None
        self._commit_task: asyncio.Task[None] | None = None
        self._hooks: set[asyncio.Task[None]] = set()  # on_assigned runs, see _on_assigned
        self.assigned: set[TopicPartition] = set()

    @property
    def stats(self) -> DispatchStats:
        return self.dispatcher.stats

    @property
    def running(self) -> bool:
        return self._fetch_task is not None and not self._fetch_task.done()

    def handled_below(self, topic: str, partition: int) -> int | None:
        """The offset below which every record of the partition was handled here since
        its assignment (the commit point), or None before its first record."""
        lane = self.dispatcher.lanes.get((topic, partition))
        return None if lane is None or lane.offsets is None else lane.offsets.commit_offset

    def answered_at(self) -> float | None:
        """When the broker last answered this consumer's fetches for every partition it
        holds (epoch s: the oldest of the partitions' last answers, empty ones included),
        or None while it holds none or one has had no answer since its assignment.

        A consumer cut from the broker sees an empty log, just as one reading a quiet
        topic does; this tells the two apart. aiokafka sets a partition's
        `last_poll_timestamp` from a fetch response only (no error, at the current
        position), so a cut freezes it. The lag cannot: the high-water mark it is
        computed from is learned from the same responses, so while cut the lag reads
        0 against a log the consumer cannot see. A partition paused by back-pressure
        is not fetched, so it ages too: the consumer is not keeping up with it.
        """
        oldest: int | None = None
        for tp in list(self.assigned):
            try:
                answered = self._consumer.last_poll_timestamp(tp)
            except (AssertionError, KafkaError):  # revoked meanwhile
                return None
            if answered is None:
                return None
            oldest = answered if oldest is None else min(oldest, answered)
        return None if oldest is None else oldest / 1000.0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._admin.start()
        self._consumer.subscribe(self.topics, listener=_Rebalance(self))
        await self._consumer.start()
        self._fetch_task = asyncio.create_task(self._fetch_loop(), name="synod-fetch")
        self._commit_task = asyncio.create_task(self._commit_loop(), name="synod-commit")

    async def wait(self) -> None:
        """Until the fetch loop ends (after `stop`, or on a fatal error)."""
        if self._fetch_task is not None:
            await self._fetch_task

    async def stop(self) -> None:
        """Stop fetching, drain within the bound, commit, leave the group."""
        self._stopping.set()
        for task in (self._fetch_task, self._commit_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._cancel_hooks()
        lanes = list(self.dispatcher.lanes.values())
        await self.dispatcher.close_lanes(lanes, self.config.drain_timeout_s)
        await self._commit(lanes)
        self.dispatcher.forget(lanes)
        await self._consumer.stop()  # sends LeaveGroup: partitions move at once
        await self._admin.close()

    # ------------------------------------------------------------ the loop

    async def _fetch_loop(self) -> None:
        cfg = self.config
        while not self._stopping.is_set():
            try:
                batch = await self._consumer.getmany(
                    timeout_ms=cfg.fetch_timeout_ms, max_records=cfg.fetch_max_records
                )
            except KafkaError as exc:
                log.warning("fetch failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
                continue
            for tp, records in batch.items():
                lane = self.dispatcher.lanes.get((tp.topic, tp.partition))
                if lane is None or lane.closed:
                    # Fetched while its assignment callback is still reading the commit
                    # metadata, or while it is being revoked: never drop records, rewind
                    # so they come again once the lane is open (or the new owner reads
                    # them from the commit, if the partition is gone).
                    self.commit_stats.unowned_records += len(records)
                    with contextlib.suppress(KafkaError):
                        self._consumer.seek(tp, records[0].offset)
                    continue
                for r in records:
                    self.dispatcher.ingest(
                        lane,
                        RawRecord(
                            r.topic,
                            r.partition,
                            r.offset,
                            r.key,
                            r.value,
                            tuple(r.headers or ()),
                            r.timestamp,
                        ),
                    )
            self.dispatcher.dispatch()
            self._apply_backpressure()

    async def _commit_loop(self) -> None:
        # Separate from the fetch loop, so a commit round trip never delays a fetch.
        lag_recorded = -math.inf
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.config.commit_interval_s)
            if not self._stopping.is_set():
                await self._commit()
                now = time.monotonic()
                if now - lag_recorded >= self.config.lag_interval_s:
                    lag_recorded = now
                    await self._record_lag()

    async def _record_lag(self) -> None:
        """synod_consumer_lag_messages per owned partition: what is not handled yet.

        The end is the last stable offset under read_committed (a transaction's
        commit marker takes an offset no record has), and the fetch position has
        passed such markers, so a group at rest reads 0.
        """
        for lane in list(self.dispatcher.lanes.values()):
            if lane.closed:
                continue
            tp = TopicPartition(lane.topic, lane.partition)
            end = (
                self._consumer.last_stable_offset(tp)
                if self.config.isolation_level == "read_committed"
                else None
            )
            if end is None:
                end = self._consumer.highwater(tp)
            if end is None:
                continue  # nothing fetched from it yet
            try:
                position = await self._consumer.position(tp)
            except Exception:  # revoked meanwhile: its series goes with the lane
                continue
            lag = end - position + lane.buffered
            record_consumer_lag(self.group_id, lane.topic, lane.partition, lag)

    def _apply_backpressure(self) -> None:
        cfg = self.config
        for lane in list(self.dispatcher.lanes.values()):
            if lane.closed:
                continue
            tp = TopicPartition(lane.topic, lane.partition)
            pressure = 0.0
            if lane.offsets is not None and lane.offsets.finished_above > 64:
                pressure = lane.offsets.metadata_pressure(cfg.metadata_pause_at * 0.75)
            full = lane.buffered >= cfg.max_buffered_per_partition
            if not lane.paused and (full or pressure >= cfg.metadata_pause_at):
                self._consumer.pause(tp)
                lane.paused = True
                self.commit_stats.pauses += 1
            elif (
                lane.paused
                and lane.buffered < cfg.max_buffered_per_partition * cfg.resume_fraction
                and pressure < cfg.metadata_pause_at * 0.75
            ):
                self._consumer.resume(tp)
                lane.paused = False

    # ------------------------------------------------------------ commits

    async def _commit(self, lanes: list[Lane] | None = None) -> None:
        async with self._commit_lock:
            offsets: dict[TopicPartition, OffsetAndMetadata] = {}
            points = {}
            for lane in lanes if lanes is not None else list(self.dispatcher.lanes.values()):
                if lane.offsets is None:
                    continue
                point = lane.offsets.commit_point()
                if point == lane.last_commit:
                    continue
                if point.truncated:
                    self.commit_stats.metadata_truncations += 1
                tp = TopicPartition(lane.topic, lane.partition)
                offsets[tp] = OffsetAndMetadata(point.offset, point.metadata)
                points[tp] = (lane, point)
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                # A rebalance in progress: the revocation callback commits instead.
                self.commit_stats.commit_failures += 1
                log.info("commit failed", extra={"error": repr(exc)})
                return
            self.commit_stats.commits += 1
            for lane, point in points.values():
                lane.last_commit = point

    # ------------------------------------------------------------ rebalances

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned |= assigned
        committed = await self._committed_with_metadata(assigned)
        lanes = []
        for tp in assigned:
            found = committed.get(tp)
            offsets = None
            if found is not None and found.offset >= 0:
                skip = decode_finished(found.offset, found.metadata or "")
                offsets = PartitionOffsets(start=found.offset, skip=skip)
            lanes.append(self.dispatcher.open_lane(tp.topic, tp.partition, offsets))
        if self.on_assigned is not None and assigned:
            # Before any record of these partitions is handled: a service that
            # keeps state (the planner) rebuilds it in the hook, so the lanes are
            # held until it ends. Not awaited here: aiokafka sends no heartbeat
            # while this callback runs, and a hook longer than the session timeout
            # (a planner rebuilding 64 partitions on a busy machine) got the member
            # expelled, reassigned, rebuilt again: a rebalance loop that never ends.
            for lane in lanes:
                lane.held = True
            hook = asyncio.create_task(self._run_hook(sorted(assigned), lanes))
            self._hooks.add(hook)
            hook.add_done_callback(self._hooks.discard)
        log.info("partitions assigned", extra={"partitions": sorted(map(str, assigned))})

    async def _run_hook(self, assigned: list[TopicPartition], lanes: list[Lane]) -> None:
        assert self.on_assigned is not None
        try:
            await self.on_assigned(assigned)
        except asyncio.CancelledError:
            return  # revoked or stopping: its lanes close next, nothing to release
        except Exception:
            # As when aiokafka ran the hook: logged, and the partitions are consumed.
            log.exception(
                "assignment hook failed", extra={"partitions": sorted(map(str, assigned))}
            )
        self.dispatcher.release(lanes)

    async def _cancel_hooks(self) -> None:
        hooks = list(self._hooks)
        for hook in hooks:
            hook.cancel()
        await asyncio.gather(*hooks, return_exceptions=True)

    async def _committed_with_metadata(
        self, assigned: set[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Committed offsets with their metadata (the admin API keeps it, the consumer's
        `committed()` drops it). Retried, since the coordinator may be busy with the
        very rebalance that called us; without it we only lose the skip list."""
        if not assigned:
            return {}
        attempt = 0
        while True:
            try:
                found: dict[
                    TopicPartition, OffsetAndMetadata
                ] = await self._admin.list_consumer_group_offsets(
                    self.group_id, partitions=sorted(assigned)
                )
                return found
            except Exception as exc:
                log.warning(
                    "reading committed metadata failed",
                    extra={"attempt": attempt + 1, "error": repr(exc)},
                )
                delay = METADATA_READ_RETRY.next_delay(attempt, "transient", _jitter)
                if delay is None:
                    return {}
                await asyncio.sleep(delay)
                attempt += 1

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # A rebuild of partitions that are going away is of no use; eager
        # rebalancing revokes every partition, so every hook of this member goes.
        await self._cancel_hooks()
        self.assigned -= revoked
        lanes = [
            lane
            for tp in revoked
            if (lane := self.dispatcher.lanes.get((tp.topic, tp.partition))) is not None
        ]
        await self.dispatcher.close_lanes(lanes, self.config.drain_timeout_s)
        await self._commit(lanes)
        self.dispatcher.forget(lanes)
        for lane in lanes:
            record_consumer_lag(self.group_id, lane.topic, lane.partition, None)
        log.info("partitions revoked", extra={"partitions": sorted(map(str, revoked))})


async def serve(consumer: KeyOrderedConsumer) -> None:
    """Run a consumer until SIGTERM or SIGINT, then stop it gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await consumer.start()
    waiter = asyncio.create_task(stop.wait())
    fetch = asyncio.create_task(consumer.wait())
    await asyncio.wait({waiter, fetch}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    await consumer.stop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)


__all__ = ["ConsumerConfig", "KeyOrderedConsumer", "serve"]
