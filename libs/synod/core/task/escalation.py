"""Asking a person: an escalation parks the task until its one answer, or its timeout.

The planner escalates when the team cannot decide (no quorum after the last
round; the tests still failing after the last revision), when the budget is
spent and the task says `escalate`, when a supervisor asks
(EscalationRequested), and when the consensus of a `cp` task cannot reach a
quorum (kind `partition`, raised through `raise_for`). While an escalation is
open the task is parked: the machine decides nothing but the timeout, so no
thread, lease or call is held, and a restart folds the log back to the same
wait. The answer (EscalationAnswered, one per escalation: its id derives from
the escalation's) is folded into what the machine does next:

    approve <candidate>  the task completes with that candidate, approver named
    reject <guidance>    one revision round whose prompt carries the guidance
    raise_budget         the new limits are in force from then on
    cancel               TaskFailed(cancelled)

The task's own deadline stops while it is parked: the time between raise and
answer (log times) is added to it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from synod.core.task.actions import Publish
from synod.core.task.records import fail, publish, tests_verdict, usage
from synod.core.task.state import ANSWER, TaskState, round_of
from synod.ids import derived_id
from synod.wire import Candidate, TaskCompleted
from synod.wire.messages import (
    EscalationAnswered,
    EscalationKind,
    EscalationRaised,
    EscalationRequested,
    TaskCancelRequested,
)


def escalation_id(task_id: str, kind: str, round_: int) -> str:
    return f"{task_id}/escalation/{kind}/{round_}"


def answer_id(escalation: str) -> str:
    """The message id of an escalation's answer: one answer per escalation on the log."""
    return derived_id(escalation, "answer")


# ---------------------------------------------------------------- fold


def fold(s: TaskState, envelope: Any) -> None:
    body = envelope.body
    if isinstance(body, EscalationRaised) and envelope.sender.role == "planner":
        if body.escalation_id not in s.escalations:
            s.escalations[body.escalation_id] = (body, envelope.created_at)
    elif isinstance(body, EscalationAnswered):
        raised = s.escalations.get(body.escalation_id)
        if raised is None or body.escalation_id in s.answers or not valid(raised[0], body):
            return  # not ours, a second answer, or one the escalation cannot take
        s.answers[body.escalation_id] = (body, envelope.created_at)
        s.parked_s += max(0.0, (envelope.created_at - raised[1]).total_seconds())
        if body.action == "raise_budget":
            s.raised_budget = body.budget
            s.refusals_at_raise = len(s.refusals)
        elif body.action == "reject":
            voted = round_of(raised[0].proposal_id) if raised[0].proposal_id else 1
            s.guidance = (body.guidance, voted + 1)
    elif isinstance(body, TaskCancelRequested):
        s.cancel = s.cancel or body
    elif isinstance(body, EscalationRequested):
        s.escalation_asked = s.escalation_asked or body


def valid(raised: EscalationRaised, answer: EscalationAnswered) -> bool:
    """Whether the escalation can take this answer (an approval names one of its candidates)."""
    if answer.action == "approve":
        return any(c.candidate_id == answer.candidate_id for c in raised.candidates)
    if answer.action == "raise_budget":
        return answer.budget is not None
    return True


# ---------------------------------------------------------------- queries


def open_escalation(s: TaskState) -> tuple[EscalationRaised, datetime] | None:
    for eid, raised in s.escalations.items():
        if eid not in s.answers:
            return raised
    return None


def decide(s: TaskState) -> list[Publish] | None:
    """What a task with an escalation (or a cancel) does now; None: nothing to do here."""
    if s.cancel is not None:
        why = f": {s.cancel.reason}" if s.cancel.reason else ""
        return [fail(s, f"cancelled by {s.cancel.principal}{why}", "permanent")]
    waiting = open_escalation(s)
    if waiting is not None:
        raised, at = waiting
        ends = at + timedelta(seconds=raised.timeout_s)
        if s.now is not None and s.now >= ends:
            return [
                fail(
                    s,
                    f"escalation not answered within {raised.timeout_s:g} s "
                    f"({raised.kind}: {raised.reason})",
                    "permanent",
                )
            ]
        return []  # parked: nothing held, nothing to do until the answer or the timeout
    for eid, (answer, _) in s.answers.items():
        raised = s.escalations[eid][0]
        if answer.action == "cancel":
            return [fail(s, f"cancelled by {answer.principal} (escalation {eid})", "permanent")]
        if answer.action == "approve":
            return [_approved(s, raised, answer)]
    if s.escalation_asked is not None and not s.escalations:
        # Numbered 0, not by the vote: a VoteRequested folded before this record
        # is back from the log would otherwise make it a second escalation.
        return [raise_for(s, "supervisor", s.escalation_asked.reason, number=0)]
    return None


def wake_at(s: TaskState) -> datetime | None:
    waiting = open_escalation(s)
    if waiting is None:
        return None
    raised, at = waiting
    return at + timedelta(seconds=raised.timeout_s)


def _approved(s: TaskState, raised: EscalationRaised, answer: EscalationAnswered) -> Publish:
    [chosen] = [c for c in raised.candidates if c.candidate_id == answer.candidate_id]
    passed, summary = tests_verdict(s)
    body = TaskCompleted(
        result=chosen.content,
        plan_id=s.plan.plan_id if s.plan else "",
        decision_id=answer_id(raised.escalation_id),
        steps_completed=len(s.completed),
        usage=usage(s),
        tests_passed=passed,
        tests_summary=summary,
        approved_by=answer.principal,
    )
    return publish(s, body, "outcome")


def raise_for(
    s: TaskState,
    kind: EscalationKind,
    reason: str,
    candidates: list[Candidate] | None = None,
    number: int | None = None,
) -> Publish:
    """The escalation record that parks the task (one per kind and answer round, or
    the one `number` of its kind)."""
    proposal = s.vote.proposal_id if s.vote is not None else ""
    round_ = round_of(proposal) if proposal else 0
    eid = escalation_id(s.task_id, kind, round_ + len(s.answers) if number is None else number)
    if candidates is None:
        candidates = list(s.vote.candidates) if s.vote is not None else []
    body = EscalationRaised(
        escalation_id=eid,
        kind=kind,
        reason=reason[:10_000],
        proposal_id=proposal,
        candidates=candidates,
        timeout_s=s.config.escalation_timeout_s,
    )
    return publish(s, body, f"escalation/{eid}")


def wants_escalation(s: TaskState) -> bool:
    """Escalate instead of failing: on by default, off with the task label `escalate=false`."""
    if not s.config.escalate:
        return False
    labels = s.submitted.body.labels if s.submitted is not None else {}
    return labels.get("escalate", "true").lower() not in ("false", "0", "no", "off")


def undecided(s: TaskState) -> Publish | None:
    """The escalation for an answer the last round left undecided, if it is one."""
    d = s.decision
    if d is None or d.outcome == ANSWER or not wants_escalation(s):
        return None
    if d.outcome == "no_quorum":
        return raise_for(
            s,
            "no_quorum",
            f"the reviewers reached no quorum (tally {dict(d.tally)}, quorum {d.quorum})",
        )
    passed, summary = tests_verdict(s)
    if passed is False:
        return raise_for(s, "verification", f"the tests still fail after revision: {summary}")
    return None
