"""Folding a task's envelopes, in log order, into the parts of its status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from synod.core.blackboard import RECONCILE_STEP, Blackboard, apply_record, resolved_values
from synod.core.taskview.status import (
    TERMINAL_STATES,
    BlackboardStatus,
    DecisionStatus,
    FailureStatus,
    StepState,
    StepStatus,
    TaskState,
)
from synod.errors import ErrorClass
from synod.wire.messages import (
    Decision,
    Envelope,
    FactPublished,
    PlanProposed,
    PlanStep,
    Reconciled,
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

# Long enough to recognise an output, short enough that a status of a 50-step
# plan stays a few kilobytes.
PREVIEW_CHARS = 280


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
    board: Blackboard = field(default_factory=Blackboard)
    facts_published: int = 0
    reconciled: bool = False
    settlement: str = ""
    overturned: list[str] = field(default_factory=list)

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
        if isinstance(body, FactPublished):
            self.board = apply_record(self.board, env)
            self.facts_published += 1
        elif isinstance(body, TaskSubmitted):
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
        elif isinstance(body, Reconciled):
            self._reconciled(body)
        elif isinstance(body, TaskCompleted) and not self.terminal:
            self.state = "completed"
            self.settlement = "provisional" if body.provisional else ""
            self.result = body.result
            if body.plan_id:
                self.plan_id = body.plan_id
            self._finish(body.usage, body.duration_s, at)
        elif isinstance(body, TaskFailed) and not self.terminal:
            self.state = "failed"
            self.settlement = "provisional" if body.provisional else ""
            self.failure = FailureStatus(
                reason=body.reason, error_class=body.error_class, failed_step=body.failed_step
            )
            self._finish(body.usage, body.duration_s, at)

    def _reconciled(self, body: Reconciled) -> None:
        """docs/cap.md: confirmed keeps the outcome; overturned reopens the task."""
        if self.settlement != "provisional":
            return
        if body.confirmed:
            self.settlement = "confirmed"
            return
        self.settlement = "overturned"
        if body.decision_id not in self.overturned:
            self.overturned.append(body.decision_id)
        self.state, self.result, self.finished_at = "voting", None, None
        self.failure = None  # an overturned provisional failure no longer stands either

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

    def blackboard(self) -> BlackboardStatus | None:
        if not self.facts_published:
            return None
        return BlackboardStatus(
            consistency=self.request.consistency if self.request else "strong",
            facts=len(self.board),
            published=self.facts_published,
            conflicts=sorted(self.board.conflicts()),
            reconciled=self.reconciled,
            values=resolved_values(self.board),
        )

    def _step_completed(self, body: StepCompleted, at: datetime) -> None:
        if body.step_id == RECONCILE_STEP:
            self.reconciled = True
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
