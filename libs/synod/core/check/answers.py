"""Escalation invariants: an escalation is answered once, and its task resumes once, as told.

On a task's log (synod.task-events, log order):

- answer_without_escalation: an EscalationAnswered for an escalation the
  planner never raised before it;
- answered_twice: a second answer to one escalation under another message id
  (every answer's id derives from its escalation's, so consumers drop a second
  one; two ids mean a second answer could be taken);
- resumed_unlike_answer: the task did not do what the first answer said (an
  approval without a TaskCompleted naming the approver, a cancel without
  TaskFailed(cancelled by ...), a rejection whose guidance no revision carries);
- resumed_twice: a rejection's guidance carried by more than one revision round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from synod.ids import derived_id
from synod.wire.messages import (
    EscalationAnswered,
    EscalationRaised,
    StepRequested,
    TaskCompleted,
    TaskFailed,
)

KINDS = {
    "answer_without_escalation": "an answer to an escalation that was never raised",
    "answered_twice": "an escalation answered a second time under another id",
    "resumed_unlike_answer": "a task did not resume as its escalation's answer said",
    "resumed_twice": "a rejection's guidance ran in more than one revision round",
}

Flag = Callable[[str, Any, str], None]


def check(logged: Sequence[Any], flag: Flag) -> int:
    """Check one task's log records (in log order); the number of answers checked."""
    raised: set[str] = set()
    first: dict[str, Any] = {}
    checked = 0
    for r in logged:
        body = r.envelope.body
        if isinstance(body, EscalationRaised):
            raised.add(body.escalation_id)
        elif isinstance(body, EscalationAnswered):
            eid = body.escalation_id
            if eid not in raised:
                flag("answer_without_escalation", r, f"escalation {eid} was not raised before")
                continue
            if eid in first:
                if r.envelope.message_id != first[eid].envelope.message_id:
                    flag(
                        "answered_twice",
                        r,
                        f"escalation {eid} was answered at {first[eid].where} already",
                    )
                continue
            first[eid] = r
            checked += 1
    ended = [r for r in logged if isinstance(r.envelope.body, TaskCompleted | TaskFailed)]
    for eid, r in first.items():
        _resumed(eid, r, logged, ended, flag)
    return checked


def _resumed(eid: str, answer: Any, logged: Sequence[Any], ended: list[Any], flag: Flag) -> None:
    body: EscalationAnswered = answer.envelope.body
    after = [r for r in logged if r.offset > answer.offset]
    outcome = next((r for r in ended if r.offset > answer.offset), None)
    if body.action == "approve":
        done = outcome.envelope.body if outcome is not None else None
        if done is not None and not (
            isinstance(done, TaskCompleted)
            and done.approved_by == body.principal
            and done.decision_id == derived_id(eid, "answer")
        ):
            flag(
                "resumed_unlike_answer",
                outcome,
                f"{body.principal} approved {body.candidate_id!r} for {eid}, "
                f"but the task ended as {type(done).__name__}"
                f" (approved_by {getattr(done, 'approved_by', '')!r})",
            )
    elif body.action == "cancel":
        done = outcome.envelope.body if outcome is not None else None
        if done is not None and not (
            isinstance(done, TaskFailed)
            and done.reason.startswith(f"cancelled by {body.principal}")
        ):
            flag(
                "resumed_unlike_answer",
                outcome,
                f"{body.principal} cancelled the task at {answer.where}, but it ended "
                f"as {type(done).__name__}",
            )
    elif body.action == "reject":
        rounds = {
            r.envelope.body.prompt_variant
            for r in after
            if isinstance(r.envelope.body, StepRequested)
            and body.guidance in r.envelope.body.instructions
            and r.envelope.sender.role == "planner"
        }
        if len(rounds) > 1:
            flag("resumed_twice", answer, f"the guidance ran in rounds {sorted(rounds)}")
        if not rounds and outcome is not None:
            cancelled = isinstance(outcome.envelope.body, TaskFailed) and (
                outcome.envelope.body.reason.startswith("cancelled")
                or "escalation not answered" in outcome.envelope.body.reason
            )
            if not cancelled:
                flag(
                    "resumed_unlike_answer",
                    answer,
                    f"{body.principal} rejected with guidance, but no revision carries it",
                )
