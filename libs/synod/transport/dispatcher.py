"""Running handlers with key-ordered concurrency, for any source of records.

The Kafka consumer and the in-memory transport both feed records into a
`Dispatcher`; it decodes them, drops duplicates, queues them per key
(`KeyQueue`), runs up to `concurrency` handlers at once, and reports finished
offsets to each partition's `PartitionOffsets`. It never decides what to
commit or when to fetch: that is the source's job.

A `Lane` is one partition under one assignment. When a partition is revoked
its lane is closed; results that arrive afterwards belong to a lane that is no
longer registered and are ignored (the epoch check), because the new owner
will redo or skip that work from the committed offsets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from synod.errors import DecodeError, ErrorClass, SynodError
from synod.observability import process_span
from synod.transport.dedup import DedupWindow
from synod.transport.keyqueue import KeyQueue
from synod.transport.offsets import PartitionOffsets
from synod.wire import Codec, Envelope

log = logging.getLogger("synod.transport")


@dataclass(frozen=True)
class RawRecord:
    """A record as it came off the wire, before decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0


@dataclass(frozen=True)
class Received:
    """What a handler gets: the decoded envelope and where it came from."""

    envelope: Envelope[Any]
    record: RawRecord


Handler = Callable[[Received], Awaitable[None]]
# (record, reason code, message, error class) -> the record is safely stored elsewhere.
DeadLetterSink = Callable[[RawRecord, str, str, ErrorClass], Awaitable[None]]


@dataclass
class DispatchStats:
    handled: int = 0
    failed: int = 0  # handler raised; the record went to the dead-letter sink
    dead_lettered: int = 0  # undecodable or failed records stored by the sink
    duplicates: int = 0  # dropped by the dedup window
    skipped_finished: int = 0  # finished by a previous owner (commit metadata)
    late_results: int = 0  # finished after their lane was closed; ignored
    cancelled: int = 0  # cut off at a drain bound; the new owner redoes them
    max_in_flight: int = 0


@dataclass
class _Work:
    record: RawRecord
    envelope: Envelope[Any] | None  # None when undecodable; then `error` says why
    error: DecodeError | None


def _dedup_key(work: _Work) -> str:
    # Per topic: one message may rightly be copied to several topics (a task's
    # submission to its log, a step request to its work topic), and each copy
    # must be handled; a second delivery on the same topic must not.
    assert work.envelope is not None
    return f"{work.record.topic}\x00{work.envelope.message_id}"


@dataclass(eq=False)
class Lane:
    topic: str
    partition: int
    epoch: int
    offsets: PartitionOffsets | None  # None until the first record fixes the start
    keys: KeyQueue[_Work] = field(default_factory=KeyQueue)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    closed: bool = False
    paused: bool = False
    # Fetched records queue up, but none is handled until `release` (the consumer's
    # assignment hook, a state rebuild, is still running).
    held: bool = False
    last_commit: Any = None

    @property
    def buffered(self) -> int:
        return self.keys.queued + len(self.tasks)


class Dispatcher:
    def __init__(
        self,
        handler: Handler,
        dead_letter: DeadLetterSink,
        *,
        codec: Codec | None = None,
        concurrency: int = 200,
        dedup_capacity: int = 100_000,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.handler = handler
        self.dead_letter = dead_letter
        self.codec = codec or Codec()
        self.concurrency = concurrency
        self.dedup = DedupWindow(dedup_capacity)
        self.stats = DispatchStats()
        self.group = ""  # the consumer group, when a Kafka consumer feeds us (span attribute)
        self.lanes: dict[tuple[str, int], Lane] = {}
        self._in_flight = 0
        self._epoch = 0
        self._rr = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------ lanes

    def open_lane(self, topic: str, partition: int, offsets: PartitionOffsets | None) -> Lane:
        self._epoch += 1
        lane = Lane(topic, partition, self._epoch, offsets)
        self.lanes[(topic, partition)] = lane
        return lane

    async def close_lanes(self, lanes: list[Lane], drain_timeout_s: float) -> None:
        """Stop dispatching, let in-flight handlers finish within the bound, cancel the rest.

        Lanes stay registered until the caller has committed what finished; then
        it calls `forget`.
        """
        for lane in lanes:
            lane.closed = True
            lane.keys.drop_all()
        tasks = [t for lane in lanes for t in lane.tasks]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=drain_timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning(
                "drain bound reached; cancelled handlers",
                extra={"cancelled": len(pending), "bound_s": drain_timeout_s},
            )

    def release(self, lanes: list[Lane]) -> None:
        """Let held lanes run their queued records (those not closed meanwhile)."""
        for lane in lanes:
            lane.held = False
        self.dispatch()

    def forget(self, lanes: list[Lane]) -> None:
        for lane in lanes:
            if self.lanes.get((lane.topic, lane.partition)) is lane:
                del self.lanes[(lane.topic, lane.partition)]

    # ------------------------------------------------------------ records

    def ingest(self, lane: Lane, record: RawRecord) -> None:
        if lane.closed:
            return
        if lane.offsets is None:
            lane.offsets = PartitionOffsets(start=record.offset)
        if not lane.offsets.receive(record.offset):
            self.stats.skipped_finished += 1
            return
        try:
            work = _Work(record, self.codec.decode(record.value), None)
        except DecodeError as exc:
            work = _Work(record, None, exc)
        # Keyless records have no order to keep: each is its own key.
        key: Any = record.key if record.key is not None else ("offset", record.offset)
        lane.keys.push(key, work)

    def dispatch(self) -> None:
        """Start handlers for ready keys, round-robin over lanes, up to the bound."""
        lanes = [lane for lane in self.lanes.values() if not lane.closed and not lane.held]
        if not lanes:
            return
        idle_rounds = 0
        while self._in_flight < self.concurrency and idle_rounds < len(lanes):
            lane = lanes[self._rr % len(lanes)]
            self._rr += 1
            nxt = lane.keys.pop_ready()
            if nxt is None:
                idle_rounds += 1
                continue
            idle_rounds = 0
            key, work = nxt
            self._start(lane, key, work)

    def _start(self, lane: Lane, key: Any, work: _Work) -> None:
        self._in_flight += 1
        self._idle.clear()
        self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
        task = asyncio.create_task(self._run(lane, key, work))
        lane.tasks.add(task)

    async def _run(self, lane: Lane, key: Any, work: _Work) -> None:
        finished = False
        try:
            if work.envelope is None:
                assert work.error is not None
                await self.dead_letter(
                    work.record, work.error.reason, work.error.detail, work.error.error_class
                )
                self.stats.dead_lettered += 1
            elif self.dedup.seen(dedup_key := _dedup_key(work)):
                # Checked when the message's turn comes, not on arrival: a copy
                # queued behind its original sees it handled by then.
                self.stats.duplicates += 1
            else:
                try:
                    # The hop's process span, latency and error count (observability).
                    with process_span(work.record, work.envelope, self.group) as envelope:
                        await self.handler(Received(envelope, work.record))
                    self.dedup.add(dedup_key)
                    self.stats.handled += 1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Until retry topics exist, a failed handler's record is kept in
                    # the dead-letter topic rather than lost or retried forever.
                    self.stats.failed += 1
                    error_class: ErrorClass = (
                        exc.error_class if isinstance(exc, SynodError) else "transient"
                    )
                    log.warning("handler failed", extra={"error": repr(exc)})
                    await self.dead_letter(work.record, "handler_error", repr(exc), error_class)
                    self.stats.dead_lettered += 1
            finished = True
        except asyncio.CancelledError:
            self.stats.cancelled += 1
        except Exception as exc:
            # The dead-letter sink itself failed: leave the offset unfinished so the
            # record is redelivered after a restart instead of being dropped.
            log.error("dead-letter sink failed", extra={"error": repr(exc)})
        finally:
            self._in_flight -= 1
            task = asyncio.current_task()
            if task is not None:
                lane.tasks.discard(task)
            if self.lanes.get((lane.topic, lane.partition)) is lane:
                if finished and lane.offsets is not None:
                    lane.offsets.finish(work.record.offset)
                lane.keys.done(key)
                if not lane.closed:
                    self.dispatch()
            elif finished:
                self.stats.late_results += 1
            if self._in_flight == 0:
                self._idle.set()

    # ------------------------------------------------------------ shutdown

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def wait_idle(self) -> None:
        await self._idle.wait()
