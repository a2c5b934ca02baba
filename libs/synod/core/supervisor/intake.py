"""The supervisor's records in and out (sans-I/O), shared by its service and synod.sim.

`Intake.events` turns one record the supervisor reads (synod.heartbeats,
synod.task-events, synod.votes) into the core's events, keeping what that
takes across records: who produced each step's output, and which steps a
proposal's candidates came from, so a decision names the producers it judged
(their strikes). `reassigned`, `escalation` and `notice` are the records the
core's `Reassign`, `Escalate`, `Quarantine` and `Release` become, with the ids
that make a repeat a duplicate. Time is an input (epoch seconds).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from synod.core.supervisor.vocabulary import (
    DecisionSeen,
    Escalate,
    Event,
    HeartbeatSeen,
    Quarantine,
    Reassign,
    Release,
    StepCompletedSeen,
    StepFailedSeen,
    StepParkedSeen,
    StepRequestedSeen,
    TaskEnded,
    VoteSeen,
)
from synod.ids import derived_id
from synod.wire import (
    Decision,
    Envelope,
    Heartbeat,
    Sender,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    Vote,
    VoteRequested,
)
from synod.wire.messages import (
    EscalationRequested,
    QuarantineNotice,
    StepReassigned,
    StepRetrying,
)

MAX_TASKS = 100_000  # bounds the per-task memory
STALE_HEARTBEAT_S = 10.0  # older heartbeats (a backlog) say nothing about now


def signature(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _ts(value: datetime) -> float:
    return value.timestamp()


class Intake:
    """Records in, core events out, for the supervisor named `instance`."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        # task -> step -> the instance whose completion counts; proposal -> its steps
        self.producers: dict[str, dict[str, str]] = {}
        self.authors: dict[str, list[str]] = {}
        self.hosts: dict[str, str] = {}  # instance -> host (pod name) from its heartbeats
        self.pids: dict[str, int] = {}  # instance -> the pid its last heartbeat came from

    def events(self, envelope: Envelope[Any], now: float) -> list[Event]:
        body = envelope.body
        task = envelope.task_id or ""
        if isinstance(body, Heartbeat):
            if body.instance == self.instance or body.role == "client":
                return []
            if now - _ts(envelope.created_at) > STALE_HEARTBEAT_S:
                return []
            if body.host:
                self.hosts[body.instance] = body.host
            if body.pid:
                self.pids[body.instance] = body.pid
            return [HeartbeatSeen(body.instance, body.role, body.seq, body.state)]
        if isinstance(body, StepRequested):
            return [
                StepRequestedSeen(
                    task,
                    body.step_id,
                    envelope.attempt,
                    body.deadline_s,
                    _ts(envelope.created_at),
                    body.model,
                    body.temperature,
                    body.prompt_variant,
                )
            ]
        if isinstance(body, StepCompleted):
            if task not in self.producers and len(self.producers) >= MAX_TASKS:
                del self.producers[next(iter(self.producers))]  # a task that never ended
            self.producers.setdefault(task, {})[body.step_id] = envelope.sender.instance
            return [
                StepCompletedSeen(
                    task,
                    body.step_id,
                    envelope.attempt,
                    envelope.sender.instance,
                    signature(body.output),
                )
            ]
        if isinstance(body, StepFailed):
            # The same provider error twice is weather; a deadline (a hang) or
            # invalid output twice is the agent.
            repeatable = body.error_class != "transient" or body.reason == "deadline"
            return [
                StepFailedSeen(
                    task,
                    body.step_id,
                    envelope.attempt,
                    envelope.sender.instance,
                    f"{body.error_class}/{body.reason}",
                    repeatable,
                )
            ]
        if isinstance(body, StepRetrying):
            until = _ts(body.due_at) + body.deadline_s
            return [StepParkedSeen(task, body.step_id, envelope.attempt, until)]
        if isinstance(body, VoteRequested) and envelope.sender.role == "planner":
            steps = [s for c in body.candidates for s in c.author.split(",") if s]
            if len(self.authors) >= MAX_TASKS:
                del self.authors[next(iter(self.authors))]
            self.authors[body.proposal_id] = steps
            return []
        if isinstance(body, Vote):
            if body.kind == "abstain":
                return []
            position = body.choice if body.kind == "choice" and body.choice else "rejected"
            return [VoteSeen(body.proposal_id, body.voter, position)]
        if isinstance(body, Decision):
            made = self.producers.get(task, {})
            steps = self.authors.get(body.proposal_id, [])
            producers = tuple(sorted({made[s] for s in steps if s in made}))
            self.authors.pop(body.proposal_id, None)
            return [DecisionSeen(task, body.proposal_id, body.outcome, producers)]
        if isinstance(body, TaskCompleted | TaskFailed):
            self.producers.pop(task, None)
            return [TaskEnded(task)]
        return []


def reassigned(action: Reassign, sender: Sender, **fields: Any) -> Envelope[StepReassigned]:
    """The task-log record of a `Reassign`: one id per (task, step, attempt judged)."""
    body = StepReassigned(
        step_id=action.step_id,
        after_attempt=action.after_attempt,
        model=action.model,
        temperature=action.temperature,
        prompt_variant=action.prompt_variant,
        reason=action.reason,
    )
    return Envelope.new(
        body,
        sender=sender,
        task_id=action.task_id,
        message_id=derived_id(action.task_id, "reassign", action.step_id, action.after_attempt),
        **fields,
    )


def escalation(action: Escalate, sender: Sender, **fields: Any) -> Envelope[EscalationRequested]:
    return Envelope.new(
        EscalationRequested(reason=action.explain()),
        sender=sender,
        task_id=action.task_id,
        # One per task: a restarted supervisor asking again is a duplicate.
        message_id=derived_id(action.task_id, "supervisor-escalation"),
        **fields,
    )


def notice(action: Quarantine | Release) -> QuarantineNotice:
    """The synod.supervisor record (compacted, keyed by instance) of a quarantine or release."""
    if isinstance(action, Quarantine):
        return QuarantineNotice(
            instance=action.instance,
            role=action.role,
            active=True,
            until=datetime.fromtimestamp(action.until, UTC),
            reason=action.reason,
            strikes=action.strikes,
        )
    return QuarantineNotice(
        instance=action.instance, role=action.role, active=False, reason=action.reason
    )


__all__ = [
    "MAX_TASKS",
    "STALE_HEARTBEAT_S",
    "Intake",
    "escalation",
    "notice",
    "reassigned",
    "signature",
]
