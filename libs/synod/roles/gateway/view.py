"""The gateway's read model: every task's log, folded, and a way to wait for changes.

`ViewConsumer` reads all partitions of `synod.task-events` and `synod.results`
without a consumer group (each gateway replica holds the
whole view; there is nothing to share or commit), and folds the envelopes
into a `TaskFeed`. HTTP handlers read the feed and wait on it for changes.

The two topics are two partitions' worth of one task: a result can be read
before the events that caused it. A causal buffer (synod.core.ordering) holds
an envelope until the causes it names on these two topics are in the view,
for at most `causal_timeout_s`; then it is applied with its gap marked on the
event (`causal_gap`) and counted, never reordered silently.

Where it starts: `window_s` back in time (the first offset of each partition
with a timestamp at or after now - window_s, by the broker's time index), so
start-up reads a bounded recent window, not the topics' whole retention; the
view is an LRU of `capacity` tasks anyway, so older history would only be
read to be evicted. Without a window it reads from the beginning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from synod.core.escalations import EscalationBook
from synod.core.ordering import CausalBuffer, Release
from synod.core.taskview import TaskIndex, TaskView
from synod.errors import DecodeError
from synod.transport.authorship import Authorship
from synod.transport.causal import record_releases
from synod.transport.clients import kafka_consumer
from synod.wire import Codec, Envelope, Vote

log = logging.getLogger("synod.gateway")

# Forged records kept per task for the console; past it they are only counted.
_FORGED_PER_TASK = 100

VIEW_RECORDS = Counter(
    "synod_gateway_view_records_total",
    "Records the gateway's view read, by outcome "
    "(applied, duplicate, undecodable, untasked, forged)",
    ["outcome"],
)
VIEW_TASKS = Gauge("synod_gateway_view_tasks", "Tasks held in the gateway's view")


class TaskFeed:
    """A `TaskIndex` that wakes whoever watches a task when the task changes.

    It also keeps each task's votes, read from `synod.votes` (they are not in
    the task's log, so not in its `TaskView`), for the console's ballots.
    """

    def __init__(self, index: TaskIndex | None = None) -> None:
        self.index = index if index is not None else TaskIndex()
        self.closing = False
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._all_watchers: set[asyncio.Event] = set()
        # task id -> message id -> vote; bounded like the index (oldest task first).
        self._votes: OrderedDict[str, dict[str, Envelope[Any]]] = OrderedDict()
        self.escalations = EscalationBook()  # /v1/escalations and the console's approvals
        # task id -> records that failed authorship, shown as forged (never applied).
        self._forged: OrderedDict[str, dict[str, dict[str, str]]] = OrderedDict()

    def apply(
        self,
        envelope: Envelope[Any],
        log_offset: int | None = None,
        causal_gap: frozenset[str] = frozenset(),
    ) -> TaskView | None:
        view = self.index.apply(envelope, log_offset)
        if self.escalations.apply(envelope) and view is None and envelope.task_id is not None:
            self._wake(envelope.task_id)
        if causal_gap and envelope.task_id is not None:
            known = self.index.get(envelope.task_id)
            if known is not None:
                known.mark_gap(envelope.message_id, causal_gap)
        if view is not None:
            self._wake(view.task_id)
        VIEW_TASKS.set(len(self.index))
        return view

    def add_vote(self, envelope: Envelope[Any]) -> bool:
        """Keep a vote (a `Vote` envelope of synod.votes); False for a duplicate."""
        if envelope.task_id is None or not isinstance(envelope.body, Vote):
            return False
        votes = self._votes.setdefault(envelope.task_id, {})
        if envelope.message_id in votes:
            return False
        votes[envelope.message_id] = envelope
        self._votes.move_to_end(envelope.task_id)
        while len(self._votes) > self.index.capacity:
            self._votes.popitem(last=False)
        self._wake(envelope.task_id)
        return True

    def votes(self, task_id: str) -> list[Envelope[Any]]:
        return list(self._votes.get(task_id, {}).values())

    def add_forged(self, envelope: Envelope[Any], topic: str, reason: str) -> None:
        """Keep what a forged record claimed, to show it as forged; its body is not kept."""
        if envelope.task_id is None:
            return
        forged = self._forged.setdefault(envelope.task_id, {})
        if envelope.message_id in forged or len(forged) >= _FORGED_PER_TASK:
            return
        forged[envelope.message_id] = {
            "message_id": envelope.message_id,
            "type": envelope.type,
            "claimed_sender": envelope.sender.instance,
            "claimed_role": envelope.sender.role,
            "signer": envelope.signer,
            "reason": reason,
            "topic": topic,
        }
        self._forged.move_to_end(envelope.task_id)
        while len(self._forged) > self.index.capacity:
            self._forged.popitem(last=False)
        self._wake(envelope.task_id)

    def forged(self, task_id: str) -> list[dict[str, str]]:
        return list(self._forged.get(task_id, {}).values())

    def _wake(self, task_id: str) -> None:
        for event in self._watchers.get(task_id, ()):
            event.set()
        for event in self._all_watchers:
            event.set()

    @contextlib.contextmanager
    def watch_all(self) -> Iterator[asyncio.Event]:
        """An event set whenever any task changes (the console's live task list)."""
        event = asyncio.Event()
        self._all_watchers.add(event)
        try:
            yield event
        finally:
            self._all_watchers.discard(event)

    @contextlib.contextmanager
    def watch(self, task_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the task changes (clear it before reading the view)."""
        event = asyncio.Event()
        self._watchers.setdefault(task_id, set()).add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(task_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[task_id]

    @property
    def watching(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    def close(self) -> None:
        """Shutting down: wake every watcher so streams can end."""
        self.closing = True
        for watchers in [*self._watchers.values(), self._all_watchers]:
            for event in watchers:
                event.set()


@dataclass
class ViewStats:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    undecodable: int = 0
    untasked: int = 0
    causal_waits: int = 0  # applied only once a cause read later was in the view
    causal_gaps: int = 0  # applied without a cause, after the buffer's time bound
    forged: int = 0  # failed authorship (synod.transport.authorship): not shown as real


# A side topic's records go to a handler of (partition, offset, key, value).
SideHandler = Callable[[int, int, bytes | None, bytes | None], None]


class ViewConsumer:
    """Folds `synod.task-events` and `synod.results` into a feed, from the beginning.

    `votes_topic`: votes are kept in the feed for the console's ballots.
    `side_topics`: other topics read the same way, each record handed to its
    handler (the console's agents and dead letters, `operations.Operations`).
    """

    def __init__(
        self,
        bootstrap: str,
        feed: TaskFeed,
        *,
        task_events_topic: str,
        results_topic: str,
        votes_topic: str | None = None,
        side_topics: Mapping[str, SideHandler] | None = None,
        codec: Codec | None = None,
        client_id: str = "synod-gateway",
        causal_timeout_s: float | None = 5.0,
        causal_capacity: int = 10_000,
        window_s: float | None = None,
        clock: Callable[[], float] = time.time,
        authorship: Authorship | None = None,
    ) -> None:
        self.feed = feed
        # With a keyring, a record no service would act on is left out of the
        # view, by the same verdict the service host uses.
        self.authorship = authorship
        self.instance = client_id
        # None: apply in arrival order (no causal buffer).
        self.causal: CausalBuffer[tuple[Envelope[Any], int | None]] | None = (
            CausalBuffer(causal_capacity, causal_timeout_s) if causal_timeout_s else None
        )
        self.window_s = window_s
        self.clock = clock
        self._positioned: set[Any] = set()
        # The window's start, fixed at start-up: records older than it are skipped.
        self._since_ms: int | None = None
        self.task_events_topic = task_events_topic
        self.results_topic = results_topic
        self.votes_topic = votes_topic
        self.side_topics = dict(side_topics or {})
        self.codec = codec or Codec()
        self.stats = ViewStats()
        self.caught_up = False
        self._ends: dict[Any, int] | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # A subscription without a group (not a PartitionReader): it is assigned
        # every partition of the topics, and of topics created after the gateway
        # started, within metadata_max_age_ms.
        self._consumer = kafka_consumer(
            bootstrap,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # An outcome is shown only once its transaction (if any) committed.
            isolation_level="read_committed",
            # Picks up topics created after the gateway started within this bound.
            metadata_max_age_ms=30_000,
        )

    @property
    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    async def start(self) -> None:
        if self.window_s is not None:
            self._since_ms = int((self.clock() - self.window_s) * 1000)
        await self._consumer.start()
        # Without a group, a subscription is assigned every partition of the topics.
        topics = [self.task_events_topic, self.results_topic, *self.side_topics]
        if self.votes_topic:
            topics.append(self.votes_topic)
        self._consumer.subscribe(topics)
        self._task = asyncio.create_task(self._run(), name="synod-gateway-view")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether the broker answers a metadata request now."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._consumer.topics()
        except (TimeoutError, KafkaError, OSError):
            return False
        return True

    async def _seek_window(self) -> None:
        """Start newly assigned partitions at the window's first record."""
        new = set(self._consumer.assignment()) - self._positioned
        if not new or self.window_s is None:
            self._positioned |= new
            return
        since_ms = int((self.clock() - self.window_s) * 1000)
        # The ends first: a partition with no record in the window at lookup time
        # starts at the end it had before the lookup, so a record written in
        # between (newer than the window's start, so not None) is never skipped.
        ends = await self._consumer.end_offsets(list(new))
        found = await self._consumer.offsets_for_times({tp: since_ms for tp in new})
        starts = {}
        for tp in new:
            at = found.get(tp)
            # None: no record that recent; start at the end (nothing in the window).
            starts[tp] = at.offset if at is not None else ends[tp]
            self._consumer.seek(tp, starts[tp])
        self._positioned |= new
        log.info(
            "view window",
            extra={
                "window_s": self.window_s,
                "starts": {f"{tp.topic}/{tp.partition}": o for tp, o in sorted(starts.items())},
            },
        )

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._seek_window()
                positioned = set(self._positioned)
                batch = await self._consumer.getmany(timeout_ms=200, max_records=1_000)
            except KafkaError as exc:
                log.warning("view fetch failed; retrying", extra={"error": repr(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.5)
                continue
            raced = False
            for tp, records in batch.items():
                if self.window_s is not None and tp not in positioned:
                    # Assigned during this fetch, so read from the beginning before
                    # its window seek: dropped here, read again from the window.
                    raced = True
                    continue
                side = self.side_topics.get(tp.topic)
                if side is not None:
                    for record in records:
                        try:
                            side(tp.partition, record.offset, record.key, record.value)
                        except Exception:
                            # One record the console cannot fold must not stop the view.
                            VIEW_RECORDS.labels(outcome="unfoldable").inc()
                            log.exception(
                                "a console record failed to fold",
                                extra={"topic": tp.topic, "offset": record.offset},
                            )
                    continue
                if tp.topic == self.votes_topic:
                    for record in records:
                        self._vote(record.value)
                    continue
                logged = tp.topic == self.task_events_topic
                since = self._since_ms
                for record in records:
                    if since is not None and record.timestamp < since:
                        # Older than the window: a fetch that raced the seek, or a
                        # producer-set timestamp from before the window.
                        continue
                    self._ingest(record.value, record.offset if logged else None, tp.topic)
            if self.causal is not None and len(self.causal):
                self._deliver(self.causal.expire(time.monotonic()))
            if not self.caught_up and not raced:  # a raced position is about to move back
                await self._check_caught_up()

    def _vote(self, value: bytes | None) -> None:
        try:
            envelope = self.codec.decode(value if value is not None else b"")
        except DecodeError:
            VIEW_RECORDS.labels(outcome="undecodable").inc()
            return  # the consensus service dead-letters it; the view only shows votes
        if isinstance(envelope.body, Vote) and self._authored(self.votes_topic or "", envelope):
            self.feed.add_vote(envelope)

    def _ingest(self, value: bytes | None, log_offset: int | None, topic: str = "") -> None:
        self.stats.records += 1
        try:
            envelope = self.codec.decode(value if value is not None else b"")
        except DecodeError as exc:
            # The view shows what it can read; the dead-letter topic is for consumers
            # that act on messages, and this one acts on none.
            self.stats.undecodable += 1
            VIEW_RECORDS.labels(outcome="undecodable").inc()
            log.debug("skipped an undecodable record", extra={"reason": exc.reason})
            return
        if not self._authored(topic or self.task_events_topic, envelope):
            return
        if envelope.task_id is None:
            self.stats.untasked += 1
            VIEW_RECORDS.labels(outcome="untasked").inc()
            return
        buffer = self.causal
        if buffer is None or buffer.delivered(envelope.message_id):
            self._apply(envelope, log_offset)  # a second copy: the view places it
            return
        if buffer.holding(envelope.message_id):
            self._apply(envelope, log_offset)
            return
        topics = (self.task_events_topic, self.results_topic)
        expected = [c for c in envelope.causes if envelope.cause_topics.get(c) in topics]
        now = time.monotonic()
        self._deliver(buffer.offer(envelope.message_id, (envelope, log_offset), expected, now))

    def _authored(self, topic: str, envelope: Envelope[Any]) -> bool:
        """False for a forged record: counted (here and in the authorship metric) and
        kept as forged for the console, never applied to a task's view."""
        if self.authorship is None:
            return True
        reason = self.authorship.rejection(topic, envelope, "gateway", self.instance)
        if reason is None:
            return True
        self.stats.forged += 1
        VIEW_RECORDS.labels(outcome="forged").inc()
        self.feed.add_forged(envelope, topic, reason)
        return False

    def _deliver(self, releases: list[Release[tuple[Envelope[Any], int | None]]]) -> None:
        for release in releases:
            envelope, log_offset = release.item
            if release.gap:
                self.stats.causal_gaps += 1
            elif release.held_s > 0:
                self.stats.causal_waits += 1
            self._apply(envelope, log_offset, release.missing)
        if releases:
            record_releases("gateway-view", releases, len(self.causal or ()))

    def _apply(
        self,
        envelope: Envelope[Any],
        log_offset: int | None,
        causal_gap: frozenset[str] = frozenset(),
    ) -> None:
        if self.feed.apply(envelope, log_offset, causal_gap) is None:
            self.stats.duplicates += 1
            VIEW_RECORDS.labels(outcome="duplicate").inc()
        else:
            self.stats.applied += 1
            VIEW_RECORDS.labels(outcome="applied").inc()

    async def _check_caught_up(self) -> None:
        """Whether the view has read what the topics held when it was assigned."""
        assignment = self._consumer.assignment()
        if not assignment:
            return
        try:
            if self._ends is None:
                self._ends = await self._consumer.end_offsets(list(assignment))
            for tp, end in self._ends.items():
                if await self._consumer.position(tp) < end:
                    return
        except KafkaError:
            return
        self.caught_up = True
        log.info("view caught up", extra={"tasks": len(self.feed.index)})

    def details(self) -> dict[str, Any]:
        return {
            "view_assigned_partitions": len(self._consumer.assignment()),
            "view_caught_up": self.caught_up,
            "view_tasks": len(self.feed.index),
            "view_records": self.stats.records,
            "view_undecodable": self.stats.undecodable,
            "view_causal_held": len(self.causal or ()),
            "view_causal_gaps": self.stats.causal_gaps,
            "view_forged": self.stats.forged,
        }


__all__ = ["VIEW_RECORDS", "VIEW_TASKS", "TaskFeed", "ViewConsumer", "ViewStats"]
