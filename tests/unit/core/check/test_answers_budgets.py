"""`synod check` on escalations and budgets: an honest log passes, each forgery is named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.logs import Log

from synod.core.check import check
from synod.core.task.escalation import answer_id
from synod.wire import Candidate, Decision, StepCompleted, StepRequested, TaskCompleted, Usage
from synod.wire.messages import (
    Budget,
    EscalationAnswered,
    EscalationRaised,
    TaskSubmitted,
    UsageReported,
    VoteRequested,
)

EVENTS = "synod.task-events"
EID = "t-1/escalation/no_quorum/2"
T = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def used(n: int) -> Usage:
    return Usage(model="m", calls=1, input_tokens=n - 100, output_tokens=100)


def escalated(spent: int = 300) -> tuple[Log, dict[str, Any]]:
    """Submitted with a budget, one step, no quorum, escalated, answered: up to the answer."""
    log = Log()
    sub = log.send("planner-0", EVENTS, TaskSubmitted(goal="g", budget=Budget(max_tokens=1_000)))
    req = log.send("planner-0", EVENTS, StepRequested(step_id="s1", role="researcher"), because=sub)
    done = log.send(
        "researcher-1", EVENTS, StepCompleted(step_id="s1", usage=used(spent)), because=req
    )
    ask = log.send(
        "planner-0",
        EVENTS,
        VoteRequested(
            proposal_id="t-1/answer",
            candidates=[Candidate(candidate_id="answer", content="x")],
            electorate=["reviewer-0", "reviewer-1", "reviewer-2"],
        ),
        because=done,
    )
    log.send(
        "reviewer-0",
        EVENTS,
        UsageReported(request_id="t-1/answer", what="juror", voter="reviewer-0", usage=used(200)),
        because=ask,
    )
    dec = log.send(
        "consensus-0",
        EVENTS,
        Decision(
            decision_id="d", proposal_id="t-1/answer", ballot=1, outcome="no_quorum", quorum=2
        ),
        because=ask,
    )
    raised = log.send(
        "planner-0",
        EVENTS,
        EscalationRaised(
            escalation_id=EID,
            kind="no_quorum",
            reason="no quorum",
            proposal_id="t-1/answer",
            candidates=[Candidate(candidate_id="answer", content="x")],
        ),
        because=dec,
    )
    return log, {"sub": sub, "raised": raised}


def answer(log: Log, who: str = "alice", **fields: Any) -> Any:
    fields.setdefault("action", "approve")
    if fields["action"] == "approve":
        fields.setdefault("candidate_id", "answer")
    body = EscalationAnswered(escalation_id=EID, principal=who, answered_at=T, **fields)
    return log.send("gateway-0", EVENTS, body, message_id=fields.pop("message_id", answer_id(EID)))


def approved(log: Log, who: str = "alice", spent: int = 500) -> Any:
    end = TaskCompleted(
        result="x",
        decision_id=answer_id(EID),
        approved_by=who,
        usage=used(spent).model_copy(
            update={"calls": 2, "input_tokens": spent - 200, "output_tokens": 200}
        ),
    )
    return log.send("planner-0", EVENTS, end)


def kinds(log: Log) -> list[str]:
    return sorted(v.kind for v in check(log.records).violations)


def test_an_honest_escalated_log_passes() -> None:
    log, _ = escalated()
    answer(log)
    approved(log)
    report = check(log.records)
    assert report.ok, report.text()
    assert report.answers == 1
    assert report.budgets == 1


def test_a_second_answer_under_another_id_is_named() -> None:
    log, _ = escalated()
    answer(log)
    second = EscalationAnswered(escalation_id=EID, action="cancel", principal="bob", answered_at=T)
    log.send("gateway-0", EVENTS, second)  # a fresh id: consumers would not drop it
    approved(log)
    assert kinds(log) == ["answered_twice"]


def test_an_outcome_unlike_the_answer_is_named() -> None:
    log, _ = escalated()
    answer(log, "alice")
    approved(log, who="mallory")
    assert kinds(log) == ["resumed_unlike_answer"]


def test_an_answer_to_an_escalation_never_raised_is_named() -> None:
    log = Log()
    log.send("planner-0", EVENTS, TaskSubmitted(goal="g"))
    answer(log)
    assert kinds(log) == ["answer_without_escalation"]


def test_usage_past_the_budget_is_named() -> None:
    log, _ = escalated(spent=900)  # 900 + the juror's 200 > 1000
    answer(log)
    approved(log, spent=1_100)
    assert kinds(log) == ["over_budget"]


def test_an_outcome_whose_usage_the_log_never_had_is_named() -> None:
    log, _ = escalated()
    answer(log)
    approved(log, spent=420)
    assert kinds(log) == ["usage_mismatch"]


def test_guidance_run_in_two_rounds_is_named() -> None:
    log, _ = escalated()
    answer(log, action="reject", guidance="mind the empty list")
    for n in (2, 3):
        log.send(
            "planner-0",
            EVENTS,
            StepRequested(
                step_id="s1",
                role="researcher",
                instructions="i\n\nmind the empty list",
                prompt_variant=f"revise-{n}",
            ),
        )
    assert kinds(log) == ["resumed_twice"]
