"""A task as its clients see it: the task's envelopes folded into a status.

The gateway and the CLI read a task's own log (`synod.task-events`) and its
outcome (`synod.results`) and fold what they read into a `TaskView`: state,
plan and per-step progress, votes and the decision, the result or the failure,
usage, and the ordered list of events. Pure: no I/O and no clock; every time in
a view comes from the envelopes.

Order. Envelopes arrive from two topics in any interleaving, but are applied in
the task's log order: an envelope read from `synod.task-events` carries its
offset there (`log_offset`) and is ordered by it. One seen only elsewhere (the
outcome on `synod.results`, or a submission the caller made itself) has no
offset yet; it is ordered after every logged event (outcomes close a task's
log) by `created_at`, then Lamport time, then arrival. When its copy turns up in
the log (same message id), it takes the copy's place. An envelope that arrives
before one it follows in the log is inserted where it belongs and the view is
folded again, so the result never depends on arrival order.

Duplicates (same message id) change nothing: at-least-once delivery, a planner
re-emitting after a crash and the outcome sitting on two topics all bring
copies.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from synod.errors import ErrorClass
from synod.wire.messages import (
    Decision,
    Envelope,
    PlanProposed,
    PlanStep,
    Sender,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    Usage,
    Vote,
    VoteRequested,
)

TaskState = Literal["submitted", "planning", "running", "voting", "completed", "failed"]
StepState = Literal["pending", "requested", "completed", "failed"]
TERMINAL_STATES: frozenset[str] = frozenset({"completed", "failed"})

# Long enough to recognise an output, short enough that a status of a 50-step
# plan stays a few kilobytes.
PREVIEW_CHARS = 280
DEFAULT_CAPACITY = 10_000


# ---------------------------------------------------------------- the status (JSON)


class _Status(BaseModel):
    model_config = ConfigDict(frozen=True)


class EventRef(_Status):
    """One event of the task's log, without its body."""

    type: str
    message_id: str
    sender: Sender
    created_at: datetime
    log_offset: int | None = None
    # Causal order (docs/ordering.md): what the event names as its causes, its clocks,
    # and the causes it was shown without (after the causal buffer's time bound).
    causes: list[str] = []
    vclock: dict[str, int] = {}
    lamport: int = 0
    hlc: int = 0
    causal_gap: list[str] = []


class StepStatus(_Status):
    step_id: str
    role: str = ""
    title: str = ""
    depends_on: list[str] = Field(default_factory=list)
    status: StepState = "pending"
    attempts: int = 0
    duration_s: float | None = None
    output_preview: str = ""
    output_chars: int = 0
    error: str = ""
    error_class: ErrorClass | None = None
    usage: Usage = Field(default_factory=Usage)
    requested_at: datetime | None = None
    finished_at: datetime | None = None


class DecisionStatus(_Status):
    decision_id: str
    proposal_id: str
    ballot: int
    outcome: str
    tally: dict[str, float] = Field(default_factory=dict)
    quorum: int
    votes_counted: int = 0
    provisional: bool = False
    equivocators: list[str] = Field(default_factory=list)
    decided_at: datetime


class VoteStatus(_Status):
    proposal_id: str
    ballot: int = 1
    subject: str = "answer"
    candidates: list[str] = Field(default_factory=list)
    electorate: list[str] = Field(default_factory=list)
    policy: str = ""
    partition_mode: str = ""
    requested_at: datetime | None = None
    votes_seen: int = 0
    decision: DecisionStatus | None = None


class FailureStatus(_Status):
    reason: str
    error_class: ErrorClass
    failed_step: str | None = None


class TaskStatus(_Status):
    """What `GET /v1/tasks/{id}` and `synod status --json` return."""

    task_id: str
    state: TaskState
    goal: str = ""
    request: TaskSubmitted | None = None
    plan_id: str | None = None
    steps: list[StepStatus] = Field(default_factory=list)
    votes: list[VoteStatus] = Field(default_factory=list)
    decision: DecisionStatus | None = None
    result: str | None = None
    failure: FailureStatus | None = None
    usage: Usage = Field(default_factory=Usage)
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    events: list[EventRef] = Field(default_factory=list)


# ---------------------------------------------------------------- folding

# Logged events first, in offset order; then the ones not (yet) seen in the log.
_SortKey = tuple[int, int, float, int, int]


@dataclass
class _Entry:
    envelope: Envelope[Any]
    log_offset: int | None
    arrival: int
    causal_gap: frozenset[str] = frozenset()

    def key(self) -> _SortKey:
        if self.log_offset is not None:
            return (0, self.log_offset, 0.0, 0, self.arrival)
        env = self.envelope
        return (1, 0, env.created_at.timestamp(), env.lamport, self.arrival)


@dataclass
class _Step:
    step_id: str
    role: str = ""
    title: str = ""
    depends_on: list[str] = field(default_factory=list)
    status: StepState = "pending"
    attempts: int = 0
    duration_s: float | None = None
    output: str = ""
    error: str = ""
    error_class: ErrorClass | None = None
    usage: Usage = field(default_factory=Usage)
    requested_at: datetime | None = None
    finished_at: datetime | None = None

    def describe(self, planned: PlanStep | None) -> StepStatus:
        return StepStatus(
            step_id=self.step_id,
            role=planned.role if planned else self.role,
            title=(planned.title if planned and planned.title else self.title),
            depends_on=list(planned.depends_on) if planned else list(self.depends_on),
            status=self.status,
            attempts=self.attempts,
            duration_s=self.duration_s,
            output_preview=_preview(self.output),
            output_chars=len(self.output),
            error=self.error,
            error_class=self.error_class,
            usage=self.usage,
            requested_at=self.requested_at,
            finished_at=self.finished_at,
        )


@dataclass
class _Vote:
    proposal_id: str
    ballot: int = 1
    subject: str = "answer"
    candidates: list[str] = field(default_factory=list)
    electorate: list[str] = field(default_factory=list)
    policy: str = ""
    partition_mode: str = ""
    requested_at: datetime | None = None
    votes_seen: int = 0
    decision: DecisionStatus | None = None


@dataclass
class _Fold:
    """Everything derived from the entries; rebuilt from scratch on a re-fold."""

    state: TaskState | None = None
    request: TaskSubmitted | None = None
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    plans: dict[str, list[PlanStep]] = field(default_factory=dict)
    plan_id: str | None = None
    carried_plan: list[PlanStep] = field(default_factory=list)
    steps: dict[str, _Step] = field(default_factory=dict)
    votes: dict[str, _Vote] = field(default_factory=dict)
    decision: DecisionStatus | None = None
    result: str | None = None
    failure: FailureStatus | None = None
    step_usage: Usage = field(default_factory=Usage)
    final_usage: Usage | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def phase(self, state: TaskState) -> None:
        # The first outcome in log order is the outcome; later events are
        # recorded but do not reopen the task.
        if not self.terminal:
            self.state = state

    def step(self, step_id: str) -> _Step:
        found = self.steps.get(step_id)
        if found is None:
            found = self.steps[step_id] = _Step(step_id)
        return found

    def vote(self, proposal_id: str) -> _Vote:
        found = self.votes.get(proposal_id)
        if found is None:
            found = self.votes[proposal_id] = _Vote(proposal_id)
        return found

    def apply(self, entry: _Entry) -> None:
        env = entry.envelope
        at = env.created_at
        if self.updated_at is None or at > self.updated_at:
            self.updated_at = at
        body = env.body
        if isinstance(body, TaskSubmitted):
            self._submitted(body, at, logged=entry.log_offset is not None)
        elif isinstance(body, PlanProposed):
            self.plans[body.plan_id] = list(body.steps)
            self.plan_id = body.plan_id
            self.phase("planning")
        elif isinstance(body, StepRequested):
            self._step_requested(body, at)
        elif isinstance(body, StepCompleted):
            self._step_completed(body, at)
        elif isinstance(body, StepFailed):
            self._step_failed(body, at)
        elif isinstance(body, VoteRequested):
            vote = self.vote(body.proposal_id)
            if body.ballot >= vote.ballot or vote.requested_at is None:
                vote.ballot = body.ballot
                vote.subject = body.subject
                vote.candidates = [c.candidate_id for c in body.candidates]
                vote.electorate = list(body.electorate)
                vote.policy = body.policy
                vote.partition_mode = body.partition_mode
                vote.requested_at = at
            self.phase("voting")
        elif isinstance(body, Vote):
            self.vote(body.proposal_id).votes_seen += 1
            self.phase("voting")
        elif isinstance(body, Decision):
            decision = DecisionStatus(
                decision_id=body.decision_id,
                proposal_id=body.proposal_id,
                ballot=body.ballot,
                outcome=body.outcome,
                tally=dict(body.tally),
                quorum=body.quorum,
                votes_counted=body.votes_counted,
                provisional=body.provisional,
                equivocators=list(body.equivocators),
                decided_at=at,
            )
            self.vote(body.proposal_id).decision = decision
            self.decision = decision
            # Decided, but the planner has yet to act on it: still the voting phase.
            self.phase("voting")
        elif isinstance(body, TaskCompleted) and not self.terminal:
            self.state = "completed"
            self.result = body.result
            if body.plan_id:
                self.plan_id = body.plan_id
            self._finish(body.usage, body.duration_s, at)
        elif isinstance(body, TaskFailed) and not self.terminal:
            self.state = "failed"
            self.failure = FailureStatus(
                reason=body.reason, error_class=body.error_class, failed_step=body.failed_step
            )
            self._finish(body.usage, body.duration_s, at)

    def _submitted(self, body: TaskSubmitted, at: datetime, *, logged: bool) -> None:
        if self.request is None:
            self.request = body
            self.submitted_at = at
            if body.plan:
                self.carried_plan = list(body.plan)
        # In the task's log means the planner accepted it and is planning; a
        # submission seen only by its submitter is just submitted.
        if self.state is None:
            self.state = "planning" if logged else "submitted"
        elif self.state == "submitted" and logged:
            self.state = "planning"

    def _step_requested(self, body: StepRequested, at: datetime) -> None:
        step = self.step(body.step_id)
        step.role = body.role
        step.title = body.title or step.title
        step.attempts += 1
        step.requested_at = at
        if step.status != "completed":
            step.status = "requested"
        if body.plan_id and body.plan_id in self.plans:
            self.plan_id = body.plan_id  # the plan being executed, whatever was proposed last
        self.phase("running")

    def _step_completed(self, body: StepCompleted, at: datetime) -> None:
        step = self.step(body.step_id)
        self.step_usage = add_usage(self.step_usage, body.usage)
        step.usage = add_usage(step.usage, body.usage)
        # The first result of a step is its result (a hedged or redelivered
        # attempt may finish later); the later ones still cost.
        if step.status != "completed":
            step.status = "completed"
            step.output = body.output
            step.duration_s = body.duration_s
            step.error = ""
            step.error_class = None
            step.finished_at = at
        self.phase("running")

    def _step_failed(self, body: StepFailed, at: datetime) -> None:
        step = self.step(body.step_id)
        self.step_usage = add_usage(self.step_usage, body.usage)
        step.usage = add_usage(step.usage, body.usage)
        if step.status != "completed":
            step.status = "failed"
            step.error = body.error
            step.error_class = body.error_class
            step.duration_s = body.duration_s
            step.finished_at = at
        self.phase("running")

    def _finish(self, usage: Usage, duration_s: float, at: datetime) -> None:
        self.finished_at = at
        self.duration_s = duration_s if duration_s > 0 else None
        if usage.calls or usage.input_tokens or usage.output_tokens or usage.cost_usd:
            self.final_usage = usage


class TaskView:
    """One task's envelopes, in log order, and the status they fold into."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.version = 0  # bumped on every change, so watchers can tell what they have seen
        self._entries: list[_Entry] = []
        self._keys: list[_SortKey] = []
        self._by_id: dict[str, _Entry] = {}
        self._arrivals = 0
        self._fold = _Fold()

    def apply(self, envelope: Envelope[Any], log_offset: int | None = None) -> bool:
        """Fold one envelope in; False if it changed nothing (a duplicate).

        `log_offset` is the envelope's offset in `synod.task-events`; None for a
        copy read elsewhere (`synod.results`) or made by the caller.
        """
        if envelope.task_id != self.task_id:
            raise ValueError(f"envelope of task {envelope.task_id!r} applied to {self.task_id!r}")
        known = self._by_id.get(envelope.message_id)
        if known is not None:
            return self._reposition(known, log_offset)
        entry = _Entry(envelope, log_offset, self._arrivals)
        self._arrivals += 1
        self._by_id[envelope.message_id] = entry
        key = entry.key()
        if not self._keys or key > self._keys[-1]:
            self._entries.append(entry)
            self._keys.append(key)
            self._fold.apply(entry)
        else:
            at = bisect.bisect(self._keys, key)
            self._entries.insert(at, entry)
            self._keys.insert(at, key)
            self._refold()
        self.version += 1
        return True

    def _reposition(self, entry: _Entry, log_offset: int | None) -> bool:
        # A copy in the log places a message seen elsewhere first; of two log
        # copies, the earlier one is the message's place.
        if log_offset is None or (entry.log_offset is not None and entry.log_offset <= log_offset):
            return False
        entry.log_offset = log_offset
        pairs = sorted(((e.key(), e) for e in self._entries), key=lambda p: p[0])
        self._keys = [k for k, _ in pairs]
        self._entries = [e for _, e in pairs]
        self._refold()
        self.version += 1
        return True

    def _refold(self) -> None:
        fold = _Fold()
        for entry in self._entries:
            fold.apply(entry)
        self._fold = fold

    # ------------------------------------------------------------ reading

    @property
    def state(self) -> TaskState:
        return self._fold.state or "submitted"

    @property
    def terminal(self) -> bool:
        return self._fold.terminal

    @property
    def goal(self) -> str:
        return self._fold.request.goal if self._fold.request else ""

    @property
    def request(self) -> TaskSubmitted | None:
        return self._fold.request

    @property
    def updated_at(self) -> datetime | None:
        return self._fold.updated_at

    def __len__(self) -> int:
        return len(self._entries)

    def envelopes(self) -> list[Envelope[Any]]:
        """The task's envelopes in log order."""
        return [e.envelope for e in self._entries]

    def entries(self) -> list[tuple[Envelope[Any], int | None]]:
        """The envelopes in log order, each with its offset in the task's log
        (None while it has been seen only elsewhere)."""
        return [(e.envelope, e.log_offset) for e in self._entries]

    def events(self) -> list[EventRef]:
        return [
            EventRef(
                type=e.envelope.type,
                message_id=e.envelope.message_id,
                sender=e.envelope.sender,
                created_at=e.envelope.created_at,
                log_offset=e.log_offset,
                causes=list(e.envelope.causes),
                vclock=dict(e.envelope.vclock),
                lamport=e.envelope.lamport,
                hlc=e.envelope.hlc,
                causal_gap=sorted(e.causal_gap),
            )
            for e in self._entries
        ]

    def mark_gap(self, message_id: str, missing: frozenset[str]) -> None:
        """Note that an event was shown before some of its causes (a causal_gap)."""
        entry = self._by_id.get(message_id)
        if entry is not None and missing:
            entry.causal_gap = entry.causal_gap | missing
            self.version += 1

    def status(self) -> TaskStatus:
        f = self._fold
        return TaskStatus(
            task_id=self.task_id,
            state=self.state,
            goal=self.goal,
            request=f.request,
            plan_id=f.plan_id,
            steps=self._steps(),
            votes=[
                VoteStatus(
                    proposal_id=v.proposal_id,
                    ballot=v.ballot,
                    subject=v.subject,
                    candidates=v.candidates,
                    electorate=v.electorate,
                    policy=v.policy,
                    partition_mode=v.partition_mode,
                    requested_at=v.requested_at,
                    votes_seen=v.votes_seen,
                    decision=v.decision,
                )
                for v in f.votes.values()
            ],
            decision=f.decision,
            result=f.result,
            failure=f.failure,
            usage=f.final_usage or f.step_usage,
            submitted_at=f.submitted_at,
            updated_at=f.updated_at,
            finished_at=f.finished_at,
            duration_s=f.duration_s,
            events=self.events(),
        )

    def to_json(self) -> dict[str, Any]:
        """The status as a JSON-ready dict."""
        return self.status().model_dump(mode="json")

    def _steps(self) -> list[StepStatus]:
        """The executed (or last proposed) plan's steps in plan order, then any others."""
        f = self._fold
        planned = f.plans.get(f.plan_id or "", f.carried_plan)
        out = [f.steps.get(p.step_id, _Step(p.step_id)).describe(p) for p in planned]
        listed = {p.step_id for p in planned}
        out.extend(s.describe(None) for s in f.steps.values() if s.step_id not in listed)
        return out


def add_usage(a: Usage, b: Usage) -> Usage:
    """Two usages summed; the model is kept when both agree (or one is unknown)."""
    if not a.model:
        model = b.model
    elif not b.model or a.model == b.model:
        model = a.model
    else:
        model = "mixed"
    return Usage(
        model=model,
        calls=a.calls + b.calls,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cost_usd=round(a.cost_usd + b.cost_usd, 10),
        unpriced_calls=a.unpriced_calls + b.unpriced_calls,
    )


def _preview(text: str) -> str:
    if len(text) <= PREVIEW_CHARS:
        return text
    return text[: PREVIEW_CHARS - 1] + "…"


# ---------------------------------------------------------------- the index


class TaskIndex:
    """Task id -> TaskView, bounded: the least recently updated task goes first.

    The bound is on tasks, not bytes; a view keeps its envelopes (the gateway
    replays them to event streams), so memory is about tasks x events x size.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.evicted = 0
        self._views: OrderedDict[str, TaskView] = OrderedDict()

    def apply(self, envelope: Envelope[Any], log_offset: int | None = None) -> TaskView | None:
        """Fold an envelope into its task's view; the view if it changed, else None.

        Envelopes without a task id (heartbeats, dead letters) are ignored.
        """
        task_id = envelope.task_id
        if task_id is None:
            return None
        view = self._views.get(task_id)
        if view is None:
            view = self._views[task_id] = TaskView(task_id)
        if not view.apply(envelope, log_offset):
            return None
        self._views.move_to_end(task_id)
        while len(self._views) > self.capacity:
            self._views.popitem(last=False)
            self.evicted += 1
        return view

    def get(self, task_id: str) -> TaskView | None:
        return self._views.get(task_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._views

    def __len__(self) -> int:
        return len(self._views)

    def __iter__(self) -> Iterator[TaskView]:
        """Views, most recently updated first."""
        return reversed(list(self._views.values()))


__all__ = [
    "DEFAULT_CAPACITY",
    "PREVIEW_CHARS",
    "TERMINAL_STATES",
    "DecisionStatus",
    "EventRef",
    "FailureStatus",
    "StepState",
    "StepStatus",
    "TaskIndex",
    "TaskState",
    "TaskStatus",
    "TaskView",
    "VoteStatus",
    "add_usage",
]
