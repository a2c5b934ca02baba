"""The whole system in one seeded, single-threaded discrete-event loop.

Instances of every role run the logic the services run, over the broker model
(`synod.sim.kafka`): the planner drives `synod.core.task.TaskMachine` and builds
its records with `synod.core.task.carry`, as `synod.roles.planner` does (fold on
assignment, `step`, `ready`, carry out, `advance`; the log is its outbox, `ack`
by default: a record's copies go on once the log has it, `carry.sends`), the
consensus instances fold synod.votes with `synod.core.consensus.fold.PartitionFold`
(silently up to the committed offset, live after it) and write deadline markers
with `synod.core.consensus.ticker`, workers and jurors build their records with
`synod.core.work` (workers stop an attempt a `StepCancelled` names), every
consumer commits through `synod.transport.offsets.PartitionOffsets` and drops
duplicates with `synod.transport.dedup.DedupWindow`, and every send is stamped
by the real `synod.transport.causal.Stamper` on the instance's (skewed) virtual
clock and encoded with the real codec. The models of the LLMs are drawn from the seed.
The supervisor core (`synod.core.supervisor`) watches as the supervisor
service does, through its intake (`synod.core.supervisor.intake`): a heartbeat
from every instance that is alive, running and reachable every `HEARTBEAT_S`,
the records of synod.task-events and synod.votes, a tick each beat; it detects
dead (crashed, paused or cut-off) instances, reassigns looping or stuck steps
(a `StepReassigned` on the task's log) and quarantines wrong jurors and
workers with a `QuarantineNotice` on synod.supervisor. Its runtime is none:
the sim's own restarts stand in for the process manager, and it draws
nothing from the seed.

Determinism: one `random.Random(seed)` makes every choice, in an order fixed
by the event queue (time, then a sequence number); nothing reads the wall
clock or depends on hash order, so a seed gives a byte-identical log.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from synod.core.check import LogRecord, Report
from synod.core.check import check as check_log
from synod.core.consensus import wiremap
from synod.core.consensus.fold import PartitionFold
from synod.core.consensus.ticker import REACHABILITY_FRESH_S, ReachabilityView, Ticker
from synod.core.supervisor import (
    Escalate,
    HeartbeatSeen,
    Quarantine,
    Reassign,
    Release,
    Restart,
    Supervisor,
    SupervisorConfig,
)
from synod.core.supervisor import intake as supervisor_intake
from synod.core.task import (
    ANSWER,
    Logged,
    Quarantined,
    TaskConfig,
    TaskMachine,
    Tick,
    carry,
)
from synod.core.task.wakes import Wakes
from synod.core.taskview import TaskView
from synod.core.work import step_records, vote_record
from synod.core.workspace.records import partition_key, workspace_key
from synod.errors import DecodeError, ErrorClass
from synod.ids import derived_id
from synod.sim.faults import FaultPlan
from synod.sim.kafka import TP, Broker, Change, Committed, Group, Record
from synod.transport.causal import HANDLING, Stamper
from synod.transport.dedup import DedupWindow
from synod.transport.offsets import PartitionOffsets, decode_finished
from synod.transport.topics import (
    HEARTBEATS,
    RESULTS,
    STEPS_CANCEL,
    STEPS_CODER,
    STEPS_RESEARCHER,
    SUPERVISOR,
    TASK_EVENTS,
    TASKS,
    VOTES,
    WORKSPACE,
)
from synod.wire import (
    Codec,
    Envelope,
    PlanStep,
    Reachability,
    Sender,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    Vote,
    VoteRequested,
)
from synod.wire.messages import FileWritten, PartitionMode, StepCancelled

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # virtual time 0
EPOCH_S = EPOCH.timestamp()
TOPICS = (
    TASKS,
    TASK_EVENTS,
    STEPS_CODER,
    STEPS_RESEARCHER,
    STEPS_CANCEL,
    VOTES,
    RESULTS,
    WORKSPACE,
    SUPERVISOR,
    HEARTBEATS,
)
# Where a planner's record goes (synod.core.task.carry.Write.to).
LOG_TOPIC = {
    "task-events": TASK_EVENTS.name,
    "workspace": WORKSPACE.name,
    "steps.researcher": STEPS_RESEARCHER.name,
    "steps.coder": STEPS_CODER.name,
    "steps.cancel": STEPS_CANCEL.name,
    "votes": VOTES.name,
    "results": RESULTS.name,
}
# The outbox modes the sim's planner carries out (ADR 0012); `ack` is the service's
# default. `transaction` is not modelled (the broker model has no transactions).
OUTBOXES: tuple[carry.OutboxMode, ...] = ("ack", "read-back")

SESSION_TIMEOUT_S = 10.0
# The services beat every second; every two here halves the events, and the
# phi-accrual detector adapts to the rhythm it sees.
HEARTBEAT_S = 2.0
# The supervisor's Reachability report (docs/cap.md): the service sends one every
# tick; here one when it changes and else every two beats, inside consensus's
# freshness window (REACHABILITY_FRESH_S, 5 s), for a quarter of the records.
REACHABILITY_EVERY_S = 2 * HEARTBEAT_S
COMMIT_INTERVAL_S = 2.0
PLANNER_SWEEP_S = 2.0
CONSENSUS_TICK_S = 1.0
HANDLER_S = 0.005  # what a planner or consensus handler takes (no model call)
TASK_CONFIG = TaskConfig(step_deadline_s=60.0, vote_deadline_s=30.0)
AP_SHARE = 0.5  # of the drawn tasks, those that choose availability (`ap`)
TASK_DEADLINE_S = 3_000.0  # far beyond the liveness bound: a task that needs it is stuck

_codec: Codec | None = None
_STATE = {"TaskCompleted": "completed", "TaskFailed": "failed"}


def codec() -> Codec:
    global _codec
    if _codec is None:
        _codec = Codec()  # parsing the schemas takes a third of a second: once per process
    return _codec


@dataclass(frozen=True)
class SimConfig:
    seed: int
    tasks: int = 3
    plan: FaultPlan = field(default_factory=FaultPlan)
    liveness_s: float = 1_500.0  # after the fault window, every task must be terminal
    planners: int = 2
    consensus: int = 2
    coders: int = 2
    researchers: int = 2
    reviewers: int = 3
    gateways: int = 1
    # Tasks to submit instead of drawn ones (at time 0, in order): a project to
    # compare with a real run of it.
    given: tuple[Envelope[TaskSubmitted], ...] = ()
    # Whether the supervisor's Reassign and Escalate reach the task logs (off: it only
    # watches, to show what its remedies change).
    reassign: bool = True
    # The planner's outbox (SYNOD_PLANNER_OUTBOX): `ack` logs a record with its copies
    # and sends them on once the log has it; `read-back` forwards on reading it back.
    outbox: carry.OutboxMode = "ack"
    # Whether drawn tasks choose `ap` too (AP_SHARE of them), or all `cp` as the
    # default TaskSubmitted does.
    ap_tasks: bool = True

    def __post_init__(self) -> None:
        if self.outbox not in OUTBOXES:
            raise ValueError(f"outbox {self.outbox!r}: the sim models {', '.join(OUTBOXES)}")


@dataclass(frozen=True)
class Out:
    """One record to send: topic, Kafka key, partition key, envelope, encoding.

    `copy`: the planner's record sent on from its log (outbox `ack`), with the
    envelope as the log took it (its clocks); `then`: what its sender does once
    the broker has it (the planner's `Forwarded.wrote` after a batch's last)."""

    topic: str
    key: bytes
    envelope: Envelope[Any]
    content_type: str = "avro"
    partition_key: bytes | None = None
    copy: bool = False
    then: Callable[[], None] | None = field(default=None, compare=False)


@dataclass
class Job:
    """What an instance is doing: a record being handled (or a tick), then sends."""

    consumer: Consumer | None
    tp: TP | None
    offset: int
    offsets: PartitionOffsets | None
    cause: Envelope[Any] | None
    make: Callable[[], list[Out]]
    dedup_key: str = ""
    outs: list[Out] | None = None
    sent: int = 0
    stalled: bool = False  # its time came while the instance was paused
    logged: dict[str, Envelope[Any]] = field(default_factory=dict)  # sent, as stamped


@dataclass
class Consumer:
    group: Group
    # Read beside the instance's work, even while it is busy (a worker's cancels:
    # the service reads them with a consumer of their own while a call runs).
    side: bool = False
    generation: int = 0
    assigned: dict[TP, PartitionOffsets] = field(default_factory=dict)
    position: dict[TP, int] = field(default_factory=dict)
    dedup: DedupWindow = field(default_factory=lambda: DedupWindow(100_000))
    dirty: set[TP] = field(default_factory=set)  # partitions whose commit point may have moved


class Instance:
    role = ""
    # The host's consumers drop a message id handled before (DedupWindow); the
    # consensus service reads with a consumer of its own and dedups in its fold.
    dedups = True

    def __init__(self, world: World, name: str, zone: str, skew_ms: int) -> None:
        self.world, self.name, self.zone, self.skew_ms = world, name, zone, skew_ms
        self.incarnation = 0
        self.alive = True
        self.paused = False
        self.expired = False  # dropped from its groups while paused or cut off
        self.busy: Job | None = None
        self.consumers: list[Consumer] = []
        self.reset()

    @property
    def sender(self) -> Sender:
        return Sender(role=self.role, instance=self.name)

    def reset(self) -> None:
        """A fresh process: nothing survives but the name."""
        self.beats = 0  # a new process counts its heartbeats from 0 again
        self.stamper = Stamper(self.name, clock_ms=self.clock_ms)
        self.busy = None
        self.consumers = [
            Consumer(self.world.broker.group(g, t), side=self.side(g))
            for g, t in self.subscriptions()
        ]

    def clock_ms(self) -> int:
        return round(self.world.now * 1000) + self.skew_ms

    def at(self) -> datetime:
        return EPOCH + timedelta(milliseconds=self.clock_ms())

    # ------------------------------------------------------------ role interface

    def subscriptions(self) -> list[tuple[str, tuple[str, ...]]]:
        return []

    def side(self, group: str) -> bool:
        return False

    def on_side(self, envelope: Envelope[Any]) -> None:
        """A record of a side consumer, handled at once (no time, nothing sent)."""
        return None

    def on_assigned(self, consumer: Consumer, tps: list[TP]) -> None:
        return None

    def from_end(self, consumer: Consumer, tps: list[TP]) -> None:
        """Start `tps` at their end (auto_offset_reset latest: only what comes next)."""
        for tp in tps:
            end = self.world.broker.end(tp)
            consumer.assigned[tp] = PartitionOffsets(end)
            consumer.position[tp] = end

    def handle(
        self, consumer: Consumer, record: Record, envelope: Envelope[Any]
    ) -> tuple[float, Callable[[], list[Out]]] | None:
        return None

    def tick(self) -> list[Out]:
        return []

    tick_s: float | None = None


# ---------------------------------------------------------------- roles


class Planner(Instance):
    role = "planner"
    tick_s = PLANNER_SWEEP_S

    def reset(self) -> None:
        self.machines: dict[str, TaskMachine] = {}
        self.partition_of: dict[str, TP] = {}
        # A new process remembers nothing it forwarded: what its predecessor logged
        # and did not send on goes on when it is read back (ack, ADR 0012).
        self.forwarded = carry.Forwarded(self.world.config.outbox)
        # As Planner.wakes: a tick steps only the tasks whose wake is due.
        self.wakes = Wakes()
        super().reset()

    def subscriptions(self) -> list[tuple[str, tuple[str, ...]]]:
        return [("synod.planner", (TASKS.name, TASK_EVENTS.name))]

    def machine(self, task_id: str) -> TaskMachine:
        m = self.machines.get(task_id)
        if m is None:
            m = self.machines[task_id] = TaskMachine(task_id, TASK_CONFIG)
            self.wakes.soon(task_id)
        return m

    def on_assigned(self, consumer: Consumer, tps: list[TP]) -> None:
        # As Planner.rebuild: fold the assigned task-log partitions from the start,
        # merging their clocks, before handling anything.
        for tp in tps:
            if tp[0] != TASK_EVENTS.name:
                continue
            for offset in range(self.world.broker.end(tp)):
                record = self.world.broker.read(tp, offset, self.world.now)
                if record is None:
                    break
                envelope = self.world.decode(record)
                if envelope is None or envelope.task_id is None:
                    continue
                self.stamper.observe(record.topic, envelope)
                self.machine(envelope.task_id).step(Logged(envelope, replayed=True))
                self.partition_of[envelope.task_id] = tp
                self.wakes.soon(envelope.task_id)  # folded: due once, right after

    def handle(
        self, consumer: Consumer, record: Record, envelope: Envelope[Any]
    ) -> tuple[float, Callable[[], list[Out]]] | None:
        if envelope.task_id is None:
            return None
        if record.topic == TASKS.name:
            if not carry.accepts(envelope):
                return None
            accepted = [Out(TASK_EVENTS.name, envelope.task_id.encode(), envelope)]
            return HANDLER_S, lambda: accepted
        m = self.machine(envelope.task_id)
        self.partition_of[envelope.task_id] = (record.topic, record.partition)
        m.step(Quarantined(frozenset()))
        m.step(self.forwarded.logged(envelope))
        outs = self.run(m)
        self.wakes.set(m.task_id, m.next_wake())
        return HANDLER_S, lambda: outs

    def tick(self) -> list[Out]:
        """As Planner.sweep_once: the tasks due, of the partitions held; one of a
        partition not held now waits aside until it is."""
        owned = {tp for c in self.consumers for tp in c.assigned}
        self.wakes.release(tp[1] for tp in owned if tp[0] == TASK_EVENTS.name)
        now = self.at()
        outs: list[Out] = []
        for task_id, at in self.wakes.due(now):
            m = self.machines.get(task_id)
            if m is None:
                continue
            tp = self.partition_of.get(task_id)
            if tp not in owned:
                self.wakes.hold(task_id, tp[1] if tp is not None else -1, at)
                continue
            m.step(Quarantined(frozenset()))
            m.step(Tick(now))
            outs.extend(self.run(m))
            self.wakes.set(task_id, m.next_wake())
        return outs

    def run(self, m: TaskMachine) -> list[Out]:
        """One ready/advance round, as Planner.run does when nothing feeds back: every
        record built by synod.core.task.carry. `read-back`: each record alone (its
        forwards follow when it is read back); `ack`: each batch as the outbox sends
        it (`carry.sends`: records, grants, then copies), then `Forwarded.wrote`."""
        mode = self.world.config.outbox
        ready = m.ready()
        outs: list[Out] = []
        for item in carry.carry_out(m, ready, self.sender, mode, self.at()):
            if isinstance(item, carry.Ask):
                # Simulated tasks carry their plans and are `strong`: neither is asked for.
                raise AssertionError(f"the simulator does not model {type(item.action).__name__}")
            batch = []
            for w, copy in carry.sends(item):
                topic = LOG_TOPIC[w.to]
                key = w.key or b""
                batch.append(Out(topic, key, w.envelope, w.content_type, w.partition_key, copy))
            if mode == "ack" and any(w.copies for w in item):
                batch[-1] = replace(batch[-1], then=partial(self.forwarded.wrote, item))
            outs.extend(batch)
        m.advance(ready)
        return outs


class Worker(Instance):
    tick_s = None

    def __init__(self, world: World, name: str, zone: str, skew_ms: int, role: str) -> None:
        self.role = role
        super().__init__(world, name, zone, skew_ms)

    def reset(self) -> None:
        # As WorkerService.on_cancel: the requests cancelled lately (a cancel may come
        # before its request). A new process knows none.
        self.cancelled: set[str] = set()
        super().reset()

    def subscriptions(self) -> list[tuple[str, tuple[str, ...]]]:
        topic = STEPS_CODER.name if self.role == "coder" else STEPS_RESEARCHER.name
        # Every instance reads every cancel, in a group of its own, from now on.
        cancel = f"synod.{self.role}.cancel.{self.name}"
        return [(f"synod.{self.role}", (topic,)), (cancel, (STEPS_CANCEL.name,))]

    def side(self, group: str) -> bool:
        return group.startswith(f"synod.{self.role}.cancel.")

    def on_assigned(self, consumer: Consumer, tps: list[TP]) -> None:
        if consumer.side:  # auto_offset_reset latest: cancels for attempts running now
            self.from_end(consumer, tps)

    def on_side(self, envelope: Envelope[Any]) -> None:
        """As WorkerService.on_cancel: remember the cancelled requests and stop the one
        running here, if it is one of them and its model call is still out (its
        records not yet sent). Simulated tasks have no budget, so a stopped attempt
        has no usage to charge (`_charge_cancel` writes nothing then either)."""
        body = envelope.body
        if not isinstance(body, StepCancelled):
            return
        self.cancelled.update(body.request_ids)
        job = self.busy
        if (
            job is not None
            and job.outs is None
            and job.cause is not None
            and job.cause.message_id in body.request_ids
        ):
            self.world.stop(self, job)

    def handle(
        self, consumer: Consumer, record: Record, envelope: Envelope[Any]
    ) -> tuple[float, Callable[[], list[Out]]] | None:
        step = envelope.body
        if not isinstance(step, StepRequested):
            return None
        if envelope.message_id in self.cancelled:
            self.world.stopped.append((self.world.now, self.name, envelope.message_id, False))
            return None  # cancelled before it started: nothing to publish
        took, result = self.world.model_step(
            self.name, step, envelope.attempt, envelope.task_id or ""
        )

        def make() -> list[Out]:
            outs = []
            for log_name, env in step_records(envelope, result, self.sender, self.at()):
                if log_name == "workspace":
                    body = env.body
                    assert isinstance(body, FileWritten)
                    key = workspace_key(env.task_id or "", body.path, body.write_id)
                    outs.append(
                        Out(
                            WORKSPACE.name, key, env, partition_key=partition_key(env.task_id or "")
                        )
                    )
                else:
                    outs.append(Out(TASK_EVENTS.name, (env.task_id or "").encode(), env))
            return outs

        return took, make


class Reviewer(Instance):
    role = "reviewer"

    def subscriptions(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(f"synod.reviewer.{self.name}", (VOTES.name,))]

    def handle(
        self, consumer: Consumer, record: Record, envelope: Envelope[Any]
    ) -> tuple[float, Callable[[], list[Out]]] | None:
        request = envelope.body
        if (
            not isinstance(request, VoteRequested)
            or envelope.sender.role != "consensus"
            or self.name not in request.electorate
        ):
            return None
        took, vote = self.world.model_vote(self.name, request)

        def make() -> list[Out]:
            env = vote_record(envelope, vote, self.sender, self.at())
            return [Out(VOTES.name, (env.task_id or "").encode(), env)]

        return took, make


class Consensus(Instance):
    role = "consensus"
    tick_s = CONSENSUS_TICK_S
    dedups = False

    def reset(self) -> None:
        self.tickers: dict[TP, Ticker] = {}
        # The supervisor's reports, as ConsensusService's reader of synod.heartbeats
        # takes them: a restarted instance starts with none (markers name nobody
        # until a fresh one comes).
        self.reachability = ReachabilityView(REACHABILITY_FRESH_S)
        super().reset()

    def subscriptions(self) -> list[tuple[str, tuple[str, ...]]]:
        return [
            ("synod.consensus", (VOTES.name,)),
            (f"synod.consensus.reachability.{self.name}", (HEARTBEATS.name,)),
        ]

    def side(self, group: str) -> bool:
        return group.startswith("synod.consensus.reachability.")

    def on_side(self, envelope: Envelope[Any]) -> None:
        self.reachability.heard(envelope)

    def on_assigned(self, consumer: Consumer, tps: list[TP]) -> None:
        if consumer.side:  # from the end: only reports from now on count (fresh_s)
            self.from_end(consumer, tps)
            return
        # As ConsensusService._on_assigned (no snapshot): refold silently up to the
        # group's committed offset, whose outputs were out before it was committed.
        self.tickers = {tp: t for tp, t in self.tickers.items() if tp in consumer.assigned}
        for tp in tps:
            ticker = self.tickers[tp] = Ticker(PartitionFold(self.sender))
            for offset in range(consumer.assigned[tp].start):
                record = self.world.broker.read(tp, offset, self.world.now)
                if record is None:
                    break
                envelope = self.world.decode(record)
                if envelope is not None:
                    self.stamper.observe(record.topic, envelope)
                    ticker.apply(envelope)

    def handle(
        self, consumer: Consumer, record: Record, envelope: Envelope[Any]
    ) -> tuple[float, Callable[[], list[Out]]] | None:
        ticker = self.tickers.get((record.topic, record.partition))
        if ticker is None:
            return None
        result = ticker.apply(envelope)
        outs = [
            Out(
                VOTES.name if p.to == "votes" else TASK_EVENTS.name,
                (p.envelope.task_id or "").encode(),
                p.envelope,
            )
            for p in result.publish
        ]
        if not outs:
            return None
        return HANDLER_S, lambda: outs

    def tick(self) -> list[Out]:
        # As ConsensusService._tick_loop: the sim's publish never fails (an outage
        # holds the send instead), so no marker is handed back.
        now = wiremap.epoch_seconds(self.at())
        outs: list[Out] = []
        for ticker in self.tickers.values():
            for marker in ticker.due(now, self.sender, self.reachability, self.world.new_id):
                env = marker.envelope
                outs.append(Out(VOTES.name, (env.task_id or "").encode(), env))
        return outs


class Gateway(Instance):
    """The gateway's task view (synod.core.taskview): the log and the results folded
    into what a client sees; it must agree with the log on every task's outcome."""

    role = "gateway"

    def reset(self) -> None:
        self.views: dict[str, TaskView] = {}
        super().reset()

    def subscriptions(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(f"synod.gateway.{self.name}", (TASK_EVENTS.name, RESULTS.name))]

    def on_assigned(self, consumer: Consumer, tps: list[TP]) -> None:
        # The view is rebuilt by reading the partitions again (the gateway's window).
        for tp in tps:
            consumer.assigned[tp] = PartitionOffsets(0)
            consumer.position[tp] = 0

    def handle(
        self, consumer: Consumer, record: Record, envelope: Envelope[Any]
    ) -> tuple[float, Callable[[], list[Out]]] | None:
        if envelope.task_id is not None:
            view = self.views.setdefault(envelope.task_id, TaskView(envelope.task_id))
            view.apply(envelope, record.offset if record.topic == TASK_EVENTS.name else None)
        return None


# ---------------------------------------------------------------- the world


@dataclass
class SimResult:
    seed: int
    tasks: int
    faults: tuple[str, ...]
    digest: str
    report: Report
    stuck: list[str]  # tasks not terminal within the liveness bound
    views: list[str]  # tasks whose gateway view disagrees with the log's outcome
    virtual_s: float
    records: int
    completed: int
    failed: int
    events: int
    detected: list[tuple[float, str]]  # (virtual time, instance) the supervisor found dead
    quarantined: list[str]  # instances the supervisor quarantined
    reassigned: list[tuple[float, str, str, str]]  # (time, task, step, reason) reassigned
    torn: list[tuple[float, str, str, str]]  # (time, planner, message id, topic) copies lost
    stopped: list[tuple[float, str, str, bool]]  # (time, worker, request, running) cancelled
    outbox: str = "ack"

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.stuck and not self.views

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seed": self.seed,
            "tasks": self.tasks,
            "faults": list(self.faults),
            "hash": self.digest,
            "virtual_s": round(self.virtual_s, 3),
            "records": self.records,
            "completed": self.completed,
            "failed": self.failed,
            "events": self.events,
            "detected": [{"at_s": round(t, 3), "instance": i} for t, i in self.detected],
            "quarantined": self.quarantined,
            "reassigned": [
                {"at_s": round(t, 3), "task_id": task, "step_id": step, "reason": reason}
                for t, task, step, reason in self.reassigned
            ],
            "outbox": self.outbox,
            "copies_lost": [
                {"at_s": round(t, 3), "instance": i, "message_id": m, "topic": topic}
                for t, i, m, topic in self.torn
            ],
            "cancelled": [
                {"at_s": round(t, 3), "instance": i, "request_id": m, "running": running}
                for t, i, m, running in self.stopped
            ],
            "stuck": self.stuck,
            "view_disagrees": self.views,
            "check": self.report.to_json(),
        }


class World:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.plan = config.plan
        self.rng = random.Random(config.seed)
        self.now = 0.0
        self.queue: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.events = 0
        self.broker = Broker({t.name: t.partitions for t in TOPICS})
        self.decoded: dict[bytes, Envelope[Any] | None] = {}
        self.tasks: list[str] = []
        self.terminal: dict[str, str] = {}
        self.down: list[tuple[float, float, str | None]] = []  # (from, to, zone or None=all)
        self.down_until = 0.0  # the end of the last outage
        self.instances: list[Instance] = []
        zones = ("a", "b", "c")

        def skew() -> int:
            if not self.plan.on("skew"):
                return 0
            return self.rng.randint(-self.plan.skew_max_ms, self.plan.skew_max_ms)

        def add(make: Callable[[str, int], Instance], n: int) -> None:
            for i in range(n):
                zone = zones[len(self.instances) % len(zones)]
                self.instances.append(make(zone, i))

        add(lambda z, i: Planner(self, f"planner-{i}", z, skew()), config.planners)
        add(lambda z, i: Consensus(self, f"consensus-{i}", z, skew()), config.consensus)
        add(lambda z, i: Worker(self, f"coder-{i}", z, skew(), "coder"), config.coders)
        add(
            lambda z, i: Worker(self, f"researcher-{i}", z, skew(), "researcher"),
            config.researchers,
        )
        add(lambda z, i: Reviewer(self, f"reviewer-{i}", z, skew()), config.reviewers)
        add(lambda z, i: Gateway(self, f"gateway-{i}", z, skew()), config.gateways)
        self.liar = (
            f"reviewer-{self.rng.randrange(config.reviewers)}" if self.plan.on("liar") else None
        )
        # No person answers an escalation here: a step out of reassignments is left to
        # the planner (its attempts and deadlines), not put to someone.
        # It ticks at every heartbeat round, so that is its tick interval.
        self.supervisor = Supervisor(SupervisorConfig(escalate=False, tick_interval_s=HEARTBEAT_S))
        self.supervisor_sender = Sender(role="supervisor", instance="supervisor-0")
        # The last Reachability report sent, and when the next one is due unchanged.
        self.reported: tuple[tuple[list[str], list[str]] | None, float] = (None, 0.0)
        self.intake = supervisor_intake.Intake(self.supervisor_sender.instance)
        # The supervisor's clock is unskewed; it stamps what it appends to task logs.
        self.supervisor_stamper = Stamper(
            self.supervisor_sender.instance, clock_ms=lambda: round(self.now * 1000)
        )
        self.reassigned: list[tuple[float, str, str, str]] = []  # (time, task, step, reason)
        self.looping: dict[tuple[str, str], bool] = {}  # (task, step): stuck in a loop
        self.detected: list[tuple[float, str]] = []
        # When each instance could not beat (crashed or paused): what detection is judged by.
        self.silent: dict[str, list[list[float]]] = {}
        self.quarantined: list[str] = []
        # (time, planner, message id, topic): a copy lost when its sender crashed after
        # the log took the record (outbox `ack`); its successor must send it on.
        self.torn: list[tuple[float, str, str, str]] = []
        # (time, worker, request id, while running): attempts a StepCancelled stopped.
        self.stopped: list[tuple[float, str, str, bool]] = []

    # ------------------------------------------------------------ plumbing

    def new_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def push(self, t: float, kind: str, payload: Any = None) -> None:
        self.seq += 1
        assert t >= self.now, f"{kind} scheduled in the past"
        heapq.heappush(self.queue, (t, self.seq, kind, payload))

    def decode(self, record: Record) -> Envelope[Any] | None:
        if record.value not in self.decoded:
            try:
                self.decoded[record.value] = codec().decode(record.value)
            except DecodeError:
                self.decoded[record.value] = None
        return self.decoded[record.value]

    def in_window(self) -> bool:
        return self.now < self.plan.window_s

    def chance(self, fault: str, p: float) -> bool:
        """Whether `fault` strikes now: only when on, inside the window, with chance p."""
        return self.in_window() and self.plan.on(fault) and self.rng.random() < p

    def reachable(self, inst: Instance) -> bool:
        if self.now >= self.down_until:
            return True
        return not any(a <= self.now < b and z in (None, inst.zone) for a, b, z in self.down)

    def reachable_again(self, inst: Instance) -> float:
        ends = [b for a, b, z in self.down if a <= self.now < b and z in (None, inst.zone)]
        return max(ends, default=self.now)

    # ------------------------------------------------------------ the run

    def run(self) -> SimResult:
        for inst in self.instances:
            self.join(inst)
            if inst.tick_s is not None:
                self.push(self.rng.uniform(0, inst.tick_s), "tick", (inst, inst.incarnation))
            self.push(COMMIT_INTERVAL_S, "commit", (inst, inst.incarnation))
        self.submit_tasks()
        self.schedule_faults()
        self.push(HEARTBEAT_S, "beat")
        end = self.plan.window_s + self.config.liveness_s
        while self.queue:
            t, _, kind, payload = heapq.heappop(self.queue)
            if t > end:
                break
            self.now = t
            self.events += 1
            getattr(self, f"_on_{kind}")(payload)
            if len(self.terminal) == len(self.tasks) and self.tasks and t >= self.last_submit:
                break
        return self.result()

    def submit_tasks(self) -> None:
        client = Sender(role="client", instance="sim-client")
        self.last_submit = 0.0
        for env in self.config.given:
            self.tasks.append(env.task_id or "")
            self.push(0.0, "submit", env.model_copy(update={"created_at": EPOCH}))
        if self.config.given:
            return
        for i in range(self.config.tasks):
            n = self.rng.randint(1, 4)
            steps = []
            for k in range(n):
                coder = self.rng.random() < 0.6
                deps = sorted({f"s{d}" for d in range(k) if self.rng.random() < 0.5})
                steps.append(
                    PlanStep(
                        step_id=f"s{k}",
                        role="coder" if coder else "researcher",
                        title=f"step {k}",
                        depends_on=deps,
                        files=[f"src/s{k}.py"] if coder else [],
                    )
                )
            task_id = f"task-{i}-{self.rng.getrandbits(32):08x}"
            at = self.rng.uniform(0, 30)
            self.last_submit = max(self.last_submit, at)
            body = TaskSubmitted(
                goal=f"simulated task {i}",
                plan=steps,
                reviewers=3,
                deadline_s=TASK_DEADLINE_S,
                partition_mode=self.partition_mode(i),
            )
            env = Envelope.new(
                body,
                sender=client,
                task_id=task_id,
                message_id=self.new_id(),
                created_at=EPOCH + timedelta(seconds=at),
            )
            self.tasks.append(task_id)
            self.push(at, "submit", env)

    def partition_mode(self, i: int) -> PartitionMode:
        """Task `i`'s CAP choice (docs/cap.md): every other one `ap`, from its own
        stream so that adding it moved no other draw of the seed."""
        if not self.config.ap_tasks:
            return "cp"
        rng = random.Random(f"{self.config.seed}/partition-mode/{i}")
        return "ap" if rng.random() < AP_SHARE else "cp"

    def _on_submit(self, env: Envelope[Any]) -> None:
        # The client retries until the broker takes it (it is not in any zone).
        if any(a <= self.now < b and z is None for a, b, z in self.down):
            self.push(self.reachable_again_all(), "submit", env)
            return
        self.append(Out(TASKS.name, (env.task_id or "").encode(), env, "json"), None)

    def reachable_again_all(self) -> float:
        return max(b for a, b, z in self.down if a <= self.now < b and z is None)

    def append(
        self, out: Out, inst: Instance | None, faults: bool = True, stamper: Stamper | None = None
    ) -> Envelope[Any]:
        """Send a record, as stamped; with faults off (the supervisor's), no draw from
        the seed."""
        env = out.envelope
        stamper = inst.stamper if inst is not None else stamper
        if stamper is not None:
            env = stamper.stamp(out.topic, env)
        value = codec().encode(env, out.content_type)  # type: ignore[arg-type]
        copies = (
            2
            if faults
            and self.in_window()
            and self.plan.on("retry")
            and self.rng.random() < self.plan.retry_p
            else 1
        )
        for _ in range(copies):
            delay = (
                self.rng.uniform(0, self.plan.delay_max_s)
                if faults and self.in_window() and self.plan.on("delay")
                else 0.001
            )
            record = self.broker.append(
                out.topic, out.key, value, self.now, delay, out.partition_key or out.key
            )
            self.wake((record.topic, record.partition), record.visible_at)
        if out.topic == RESULTS.name and isinstance(env.body, TaskCompleted | TaskFailed):
            self.terminal.setdefault(env.task_id or "", type(env.body).__name__)
        if out.topic in (TASK_EVENTS.name, VOTES.name):
            self.observe(out.topic, env)
        return env

    # ------------------------------------------------------------ the supervisor

    def supervisor_now(self) -> float:
        """The supervisor core's clock: epoch seconds, as the service's."""
        return EPOCH_S + self.now

    def observe(self, topic: str, env: Envelope[Any]) -> None:
        """A record of synod.task-events or synod.votes, through the supervisor service's
        own intake (synod.core.supervisor.intake): steps, outcomes, votes, decisions.

        It sees a record when it is sent, once however many copies the broker took."""
        now = self.supervisor_now()
        self.supervisor_stamper.observe(topic, env)
        for event in self.intake.events(env, now):
            self.supervise(self.supervisor.handle(event, now))

    def _on_beat(self, _: Any) -> None:
        # A heartbeat goes through the broker: one from a paused, crashed or
        # cut-off instance does not arrive.
        for inst in self.instances:
            if inst.alive and not inst.paused and self.reachable(inst):
                inst.beats += 1
                beat = HeartbeatSeen(inst.name, inst.role, inst.beats)
                self.supervise(self.supervisor.handle(beat, self.supervisor_now()))
        self.supervise(self.supervisor.tick(self.supervisor_now()))
        self.report_reachability()
        if self.queue:  # only while something else can still happen
            self.push(self.now + HEARTBEAT_S, "beat")

    def report_reachability(self) -> None:
        """As SupervisorService.publish_reachability: who the detector hears, on
        synod.heartbeats, for consensus's ballots (`cp` names the voters it could not
        reach; `ap` decides on a quorum of those it can). Nothing while it hears nobody."""
        seen = self.supervisor.reachability(self.supervisor_now())
        if seen is None:
            return
        reachable, suspected = seen
        if (reachable, suspected) == self.reported[0] and self.now < self.reported[1]:
            return
        self.reported = ((reachable, suspected), self.now + REACHABILITY_EVERY_S)
        env = Envelope.new(
            Reachability(
                observer=self.supervisor_sender.instance, reachable=reachable, suspected=suspected
            ),
            sender=self.supervisor_sender,
            message_id=derived_id("sim-reachability", str(self.now)),
            created_at=EPOCH + timedelta(seconds=self.now),
        )
        key = self.supervisor_sender.instance.encode()
        self.append(Out(HEARTBEATS.name, key, env), None, False)

    def supervise(self, actions: list[Any]) -> None:
        """Carry out the core's actions as the supervisor service does, with its records
        (synod.core.supervisor.intake); a `Restart` is only recorded (the sim restarts
        crashed instances itself)."""
        at = EPOCH + timedelta(seconds=self.now)
        for action in actions:
            if isinstance(action, Restart):
                self.detected.append((self.now, action.instance))
            elif isinstance(action, Reassign | Escalate):
                if not self.config.reassign:
                    continue
                if isinstance(action, Reassign):
                    self.reassigned.append(
                        (self.now, action.task_id, action.step_id, action.reason)
                    )
                    env: Envelope[Any] = supervisor_intake.reassigned(
                        action, self.supervisor_sender, created_at=at
                    )
                else:
                    env = supervisor_intake.escalation(
                        action, self.supervisor_sender, created_at=at
                    )
                out = Out(TASK_EVENTS.name, action.task_id.encode(), env)
                self.append(out, None, False, self.supervisor_stamper)
            elif isinstance(action, Quarantine | Release):
                self.quarantined += [action.instance] if isinstance(action, Quarantine) else []
                n = len(self.quarantined)
                env = Envelope.new(
                    supervisor_intake.notice(action),
                    sender=self.supervisor_sender,
                    message_id=derived_id("sim-notice", action.instance, str(n), str(self.now)),
                    created_at=at,
                )
                self.append(Out(SUPERVISOR.name, action.instance.encode(), env), None, False)

    def wake(self, tp: TP, at: float) -> None:
        for inst in self.instances:
            if inst.alive and any(tp in c.assigned for c in inst.consumers):
                self.push(at, "poll", (inst, inst.incarnation))

    # ------------------------------------------------------------ groups

    def join(self, inst: Instance) -> None:
        for consumer in inst.consumers:
            self.settle(consumer.group, self.broker.join(consumer.group, inst.name))

    def leave(self, inst: Instance) -> None:
        for consumer in inst.consumers:
            consumer.assigned, consumer.position = {}, {}
            self.settle(consumer.group, self.broker.leave(consumer.group, inst.name))

    def settle(self, group: Group, changes: list[Change]) -> None:
        """Eager rebalancing: every member gives up all and takes its new assignment
        from the committed offsets (what it finished is committed first)."""
        if not changes:
            return
        by_name = {i.name: i for i in self.instances}
        for name in sorted(group.members):
            inst = by_name[name]
            consumer = next(c for c in inst.consumers if c.group is group)
            if inst.alive and not inst.paused and self.reachable(inst):
                for tp, offs in consumer.assigned.items():
                    cp = offs.commit_point()
                    # The commit of the generation being left, as on_partitions_revoked does.
                    group.committed[tp] = Committed(cp.offset, cp.metadata)
            consumer.generation = group.generation
            consumer.assigned, consumer.position = {}, {}
            tps = list(group.assignment.get(name, []))
            for tp in tps:
                committed = self.broker.committed(group, tp)
                consumer.assigned[tp] = PartitionOffsets(
                    committed.offset, decode_finished(committed.offset, committed.metadata)
                )
                consumer.position[tp] = committed.offset
            inst.on_assigned(consumer, tps)
            self.push(self.now, "poll", (inst, inst.incarnation))

    # ------------------------------------------------------------ instances

    def _on_poll(self, payload: tuple[Instance, int]) -> None:
        inst, incarnation = payload
        if not inst.alive or inst.incarnation != incarnation or inst.paused:
            return
        if inst.busy:
            # A busy worker still reads its cancels (reachable: a cut-off one gets
            # them only after its call, when it polls again).
            if self.reachable(inst):
                self.poll_side(inst)
            return
        if not self.reachable(inst):
            self.push(self.reachable_again(inst), "poll", payload)
            return
        self.poll_side(inst)
        while True:
            logs = self.broker.logs
            now = self.now
            ready = [
                (c, tp)
                for c in inst.consumers
                if not c.side
                for tp, at in c.position.items()
                if at < len(log := logs[tp[0]][tp[1]]) and log[at].visible_at <= now
            ]
            if not ready:
                # Records already in a partition but not yet readable: come back then.
                later = [
                    t
                    for c in inst.consumers
                    for tp in c.assigned
                    if (t := self.broker.next_visible(tp, c.position[tp])) is not None
                ]
                if later:
                    self.push(max(min(later), self.now), "poll", payload)
                return
            consumer, tp = ready[self.rng.randrange(len(ready))]
            record = self.broker.read(tp, consumer.position[tp], self.now)
            assert record is not None
            redeliver = (
                self.in_window() and self.plan.on("dup") and self.rng.random() < self.plan.dup_p
            )
            if not redeliver:
                consumer.position[tp] += 1
            offsets = consumer.assigned[tp]
            consumer.dirty.add(tp)
            if not offsets.receive(record.offset):
                continue  # a previous owner finished it (commit metadata)
            envelope = self.decode(record)
            if envelope is None:
                offsets.finish(record.offset)
                continue
            dedup_key = f"{record.topic}\x00{envelope.message_id}"
            if inst.dedups and consumer.dedup.seen(dedup_key):
                offsets.finish(record.offset)
                continue
            inst.stamper.observe(record.topic, envelope)
            token = HANDLING.set(envelope)
            try:
                handled = inst.handle(consumer, record, envelope)
            finally:
                HANDLING.reset(token)
            if handled is None:
                consumer.dedup.add(dedup_key)
                offsets.finish(record.offset)
                continue
            took, make = handled
            job = Job(consumer, tp, record.offset, offsets, envelope, make, dedup_key)
            inst.busy = job
            self.push(self.now + took, "done", (inst, inst.incarnation, job))
            return

    def poll_side(self, inst: Instance) -> None:
        """Hand over what the side consumers can read now, in partition order."""
        for c in inst.consumers:
            if not c.side:
                continue
            for tp in sorted(c.position):
                while (record := self.broker.read(tp, c.position[tp], self.now)) is not None:
                    c.position[tp] += 1
                    envelope = self.decode(record)
                    if envelope is not None:
                        inst.stamper.observe(record.topic, envelope)
                        inst.on_side(envelope)

    def finish(self, inst: Instance, job: Job) -> None:
        """The job's record is done: deduplicated, its offset finished (if the lane is
        still the one it came from), and the instance free for the next."""
        if job.consumer is not None and job.tp is not None and job.offsets is not None:
            job.consumer.dedup.add(job.dedup_key)
            if job.consumer.assigned.get(job.tp) is job.offsets:
                job.offsets.finish(job.offset)
                job.consumer.dirty.add(job.tp)
        inst.busy = None

    def stop(self, inst: Instance, job: Job) -> None:
        """A running job stopped (a worker's cancelled attempt): its handler returns
        having sent nothing, so its record is done; its pending end does nothing."""
        assert job.cause is not None
        self.stopped.append((self.now, inst.name, job.cause.message_id, True))
        self.finish(inst, job)
        self.push(self.now, "poll", (inst, inst.incarnation))

    def _on_done(self, payload: tuple[Instance, int, Job]) -> None:
        inst, incarnation, job = payload
        if not inst.alive or inst.incarnation != incarnation or inst.busy is not job:
            return
        if inst.paused:
            job.stalled = True  # carried on by _on_resume
            return
        if job.outs is None:
            job.outs = job.make()
        while job.sent < len(job.outs):
            if not self.reachable(inst):
                self.push(self.reachable_again(inst), "done", payload)
                return
            if self.chance("crash", self.plan.crash_mid_publish_p):
                self.crash(inst)  # mid-publish: some of the job's records are out
                return
            out = job.outs[job.sent]
            if out.copy:  # sent on with the clocks the log holds
                out = replace(out, envelope=job.logged[out.envelope.message_id])
            token = HANDLING.set(job.cause)
            try:
                sent = self.append(out, inst)
            finally:
                HANDLING.reset(token)
            if out.topic == TASK_EVENTS.name:
                job.logged[sent.message_id] = sent
            job.sent += 1
            if out.then is not None:
                out.then()
        self.finish(inst, job)
        self.push(self.now, "poll", (inst, incarnation))

    def _on_tick(self, payload: tuple[Instance, int]) -> None:
        inst, incarnation = payload
        if not inst.alive or inst.incarnation != incarnation:
            return
        assert inst.tick_s is not None
        self.push(self.now + inst.tick_s, "tick", payload)
        if inst.paused or inst.busy or not self.reachable(inst):
            return
        outs = inst.tick()
        if outs:
            job = inst.busy = Job(None, None, -1, None, None, lambda: outs)
            self.push(self.now + HANDLER_S, "done", (inst, incarnation, job))

    def _on_commit(self, payload: tuple[Instance, int]) -> None:
        inst, incarnation = payload
        if not inst.alive or inst.incarnation != incarnation:
            return
        self.push(self.now + COMMIT_INTERVAL_S, "commit", payload)
        if inst.paused or not self.reachable(inst):
            return
        for c in inst.consumers:
            # Committing an unchanged point again would change nothing: skip it.
            for tp in sorted(c.dirty):
                offs = c.assigned.get(tp)
                if offs is not None:
                    cp = offs.commit_point()
                    self.broker.commit(c.group, inst.name, c.generation, tp, cp.offset, cp.metadata)
            c.dirty.clear()

    # ------------------------------------------------------------ faults

    def schedule_faults(self) -> None:
        window = self.plan.window_s
        if self.plan.on("crash"):
            t = self.rng.expovariate(self.plan.crash_rate_per_s)
            while t < window:
                self.push(t, "crash", self.rng.choice(self.instances))
                t += self.rng.expovariate(self.plan.crash_rate_per_s)
        if self.plan.on("pause"):
            t = self.rng.expovariate(self.plan.pause_rate_per_s)
            while t < window:
                self.push(t, "pause", (self.rng.choice(self.instances), self.rng.uniform(3, 40)))
                t += self.rng.expovariate(self.plan.pause_rate_per_s)
        for name, zone in (("broker", None), ("zone", "zone")):
            if self.plan.on(name):
                start = self.rng.uniform(0, window * 0.8)
                length = self.rng.uniform(5, 45)
                cut = None if zone is None else self.rng.choice(("a", "b", "c"))
                self.down.append((start, min(start + length, window), cut))
                self.down_until = max(self.down_until, min(start + length, window))
                if cut is not None:
                    self.push(start + SESSION_TIMEOUT_S, "cutoff", (cut, start + length))

    def fall_silent(self, inst: Instance) -> None:
        spans = self.silent.setdefault(inst.name, [])
        if not spans or spans[-1][1] != math.inf:  # a paused instance that crashes: one span
            spans.append([self.now, math.inf])

    def crash(self, inst: Instance) -> None:
        job = inst.busy
        if job is not None and job.outs is not None:
            # The ack window: records in the log whose copies never went out.
            self.torn.extend(
                (self.now, inst.name, o.envelope.message_id, o.topic)
                for o in job.outs[job.sent :]
                if o.copy and o.envelope.message_id in job.logged
            )
        self.fall_silent(inst)
        inst.alive = False
        inst.incarnation += 1
        inst.busy = None
        # The group notices after the session timeout; then its partitions move.
        self.push(self.now + SESSION_TIMEOUT_S, "expire", (inst, inst.incarnation))
        self.push(self.now + self.rng.uniform(2, 30), "restart", (inst, inst.incarnation))

    def _on_crash(self, inst: Instance) -> None:
        if inst.alive:
            self.crash(inst)

    def _on_expire(self, payload: tuple[Instance, int]) -> None:
        inst, incarnation = payload
        if inst.incarnation == incarnation and (not inst.alive or inst.paused) and not inst.expired:
            inst.expired = True
            self.leave(inst)

    def _on_restart(self, payload: tuple[Instance, int]) -> None:
        inst, incarnation = payload
        if inst.incarnation != incarnation or inst.alive:
            return
        inst.incarnation += 1
        self.silent[inst.name][-1][1] = self.now
        inst.alive, inst.paused, inst.expired = True, False, False
        old = inst.consumers
        for c in old:  # a restart within the session timeout: still a member
            self.broker.leave(c.group, inst.name)
        inst.reset()
        self.join(inst)
        if inst.tick_s is not None:
            self.push(self.now + inst.tick_s, "tick", (inst, inst.incarnation))
        self.push(self.now + COMMIT_INTERVAL_S, "commit", (inst, inst.incarnation))

    def _on_pause(self, payload: tuple[Instance, float]) -> None:
        inst, length = payload
        if not inst.alive or inst.paused:
            return
        inst.paused = True
        self.fall_silent(inst)
        self.push(self.now + SESSION_TIMEOUT_S, "expire", (inst, inst.incarnation))
        self.push(self.now + length, "resume", (inst, inst.incarnation))

    def _on_resume(self, payload: tuple[Instance, int]) -> None:
        inst, incarnation = payload
        if inst.incarnation != incarnation or not inst.paused:
            return
        inst.paused = False
        self.silent[inst.name][-1][1] = self.now
        job = inst.busy
        if job is not None and job.stalled:
            job.stalled = False
            self.push(self.now, "done", (inst, incarnation, job))  # a zombie carries on
        if inst.expired:
            inst.expired = False
            self.join(inst)
        self.push(self.now, "poll", payload)

    def _on_cutoff(self, payload: tuple[str, float]) -> None:
        zone, heal = payload
        if heal <= self.now:
            return  # cut for less than the session timeout: nobody noticed
        for inst in self.instances:
            if inst.zone == zone and inst.alive and not inst.expired:
                inst.expired = True
                self.leave(inst)
        self.push(heal, "heal", zone)

    def _on_heal(self, zone: str) -> None:
        for inst in self.instances:
            if inst.zone == zone and inst.alive and inst.expired and not inst.paused:
                inst.expired = False
                self.join(inst)

    # ------------------------------------------------------------ models

    def loops(self, task_id: str, step: StepRequested) -> bool:
        """llm-loop: this step's model is stuck repeating itself, until the supervisor's
        reassignment (other parameters: a temperature is set) breaks the loop."""
        if step.temperature is not None:
            return False
        key = (task_id, step.step_id)
        if key not in self.looping:
            self.looping[key] = self.chance("llm-loop", self.plan.llm_loop_p)
        return self.looping[key]

    def model_step(
        self, worker: str, step: StepRequested, attempt: int, task_id: str = ""
    ) -> tuple[float, StepCompleted | StepFailed]:
        """How long a worker's model call takes and what it returns, drawn from the seed.

        What the worker service makes of each failure (synod.roles.worker.service.run)
        is what is reported: a call past the step's deadline is a transient
        `deadline`, an error keeps its class, output that stayed invalid after the
        repair turn is a permanent `invalid_output`.
        """
        took = self.rng.uniform(1.0, 8.0)
        if self.chance("llm-slow", self.plan.llm_slow_p):
            took *= self.rng.uniform(4, 15)
        if took > step.deadline_s:
            return step.deadline_s, StepFailed(
                step_id=step.step_id,
                error_class="transient",
                error=f"deadline of {step.deadline_s}s passed",
                reason="deadline",
                duration_s=step.deadline_s,
            )
        if self.loops(task_id, step):
            # Byte for byte the same at every attempt: the supervisor sees a loop.
            output = f"WRONG {step.step_id}: the same answer again"
            return took, StepCompleted(
                step_id=step.step_id, output=output, duration_s=round(took, 3)
            )
        if self.chance("llm-error", self.plan.llm_error_p):
            error_class: ErrorClass = self.rng.choice(
                ("transient", "transient", "permanent", "budget")
            )
            reason = {"transient": "overloaded", "permanent": "bad_request", "budget": "budget"}
            return took / 4, StepFailed(
                step_id=step.step_id,
                error_class=error_class,
                error=f"simulated {error_class} model error",
                reason=reason[error_class],
                duration_s=round(took / 4, 3),
            )
        if self.chance("llm-malformed", self.plan.llm_malformed_p):
            return took, StepFailed(
                step_id=step.step_id,
                error_class="permanent",
                error="output did not validate after the repair turn",
                reason="invalid_output",
                duration_s=round(took, 3),
            )
        wrong = self.chance("llm-wrong", self.plan.llm_wrong_p)
        output = f"{'WRONG ' if wrong else ''}{step.step_id} by {worker} (attempt {attempt})"
        return took, StepCompleted(step_id=step.step_id, output=output, duration_s=round(took, 3))

    def model_vote(self, juror: str, request: VoteRequested) -> tuple[float, Vote]:
        """A juror's verdict: honest jurors reject a wrong answer, the liar the right one."""
        took = self.rng.uniform(0.5, 4.0)
        fields: dict[str, Any] = {
            "proposal_id": request.proposal_id,
            "ballot": request.ballot,
            "voter": juror,
        }
        if self.chance("llm-error", self.plan.llm_error_p):
            # A juror whose calls keep failing abstains (Reviewer._judged).
            return took, Vote(kind="abstain", confidence=0.0, rationale="could not judge", **fields)
        good = not any("WRONG" in c.content for c in request.candidates)
        if juror == self.liar:
            good = not good
        if good:
            return took, Vote(kind="choice", choice=ANSWER, confidence=0.9, **fields)
        return took, Vote(kind="reject", confidence=0.9, rationale="the answer is wrong", **fields)

    # ------------------------------------------------------------ result

    def records(self) -> list[LogRecord]:
        out = []
        for topic, partitions in self.broker.logs.items():
            for log in partitions:
                for r in log:
                    env = self.decode(r)
                    if env is not None:
                        out.append(LogRecord(topic, r.partition, r.offset, env))
        return out

    def digest(self) -> str:
        h = hashlib.sha256()
        for topic, partitions in self.broker.logs.items():
            for p, log in enumerate(partitions):
                for r in log:
                    h.update(f"{topic}/{p}/{r.offset}/{len(r.key)}/{len(r.value)}/".encode())
                    h.update(r.key)
                    h.update(r.value)
        return h.hexdigest()

    def drain_views(self) -> None:
        """Let each gateway catch up with what is on the log (faults are over: one
        that is down now comes back first, with a fresh view, as after a restart)."""
        self.now = max(self.now, max((r.visible_at for r in self._all()), default=0.0))
        for g in self.instances:
            if not isinstance(g, Gateway):
                continue
            if not g.alive or g.paused or g.expired:
                g.incarnation += 1
                g.alive, g.paused, g.expired = True, False, False
                for c in g.consumers:
                    self.broker.leave(c.group, g.name)
                g.reset()
                self.join(g)
            for c in g.consumers:
                for tp in list(c.assigned):
                    while (record := self.broker.read(tp, c.position[tp], self.now)) is not None:
                        c.position[tp] += 1
                        envelope = self.decode(record)
                        if envelope is not None:
                            g.handle(c, record, envelope)

    def _all(self) -> list[Record]:
        return [r for parts in self.broker.logs.values() for log in parts for r in log]

    def result(self) -> SimResult:
        report = check_log(self.records())
        stuck = [t for t in self.tasks if t not in self.terminal]
        ended = self.now
        self.drain_views()
        wrong_views = [
            f"{g.name}:{t}"
            for g in self.instances
            if isinstance(g, Gateway)
            for t, outcome in self.terminal.items()
            if (view := g.views.get(t)) is None or view.state != _STATE[outcome]
        ]
        outcomes = list(self.terminal.values())
        return SimResult(
            seed=self.config.seed,
            tasks=len(self.tasks),
            faults=tuple(sorted(self.plan.faults)),
            digest=self.digest(),
            report=report,
            stuck=stuck,
            views=wrong_views,
            virtual_s=ended,
            records=self.broker.produced,
            completed=outcomes.count("TaskCompleted"),
            failed=outcomes.count("TaskFailed"),
            events=self.events,
            detected=self.detected,
            quarantined=self.quarantined,
            reassigned=self.reassigned,
            torn=self.torn,
            stopped=self.stopped,
            outbox=self.config.outbox,
        )


def simulate(config: SimConfig) -> SimResult:
    return World(config).run()


__all__ = ["SimConfig", "SimResult", "World", "simulate"]
