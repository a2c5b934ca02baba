"""The console's task document: DAG and critical path, attempts, causal order, ballots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from synod.core.taskdetail import (
    attempts,
    ballots,
    causal_order,
    critical_path,
    dag,
    happened_before,
    matches,
    verdict_of_tests,
)
from synod.wire import (
    AnswerVerified,
    Body,
    Candidate,
    Decision,
    Envelope,
    Sender,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskCompleted,
    Vote,
    VoteRequested,
)
from synod.wire.messages import StepCancelled, StepReassigned

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PLANNER = Sender(role="planner", instance="planner-0")


def env(body: Body, seconds: float = 0, **kw: Any) -> Envelope[Any]:
    kw.setdefault("sender", PLANNER)
    return Envelope.new(body, task_id="t", created_at=T0 + timedelta(seconds=seconds), **kw)


def step(
    step_id: str, deps: list[str], duration: float | None, status: str = "completed"
) -> dict[str, Any]:
    return {
        "step_id": step_id,
        "role": "coder",
        "title": "",
        "depends_on": deps,
        "status": status,
        "attempts": 1,
        "duration_s": duration,
    }


def test_the_critical_path_is_the_longest_chain_by_duration() -> None:
    steps = [
        step("a", [], 1.0),
        step("b", ["a"], 5.0),
        step("c", ["a"], 1.0),
        step("d", ["b", "c"], 1.0),
        step("e", [], 2.0),
    ]
    assert critical_path(steps) == ["a", "b", "d"]
    drawn = dag(steps)
    assert {n["step_id"]: n["depth"] for n in drawn["nodes"]} == {
        "a": 0,
        "b": 1,
        "c": 1,
        "d": 2,
        "e": 0,
    }
    assert [n["step_id"] for n in drawn["nodes"] if n["critical"]] == ["a", "b", "d"]
    assert [(e["from"], e["to"]) for e in drawn["edges"] if e["critical"]] == [
        ("a", "b"),
        ("b", "d"),
    ]


def test_with_no_durations_the_critical_path_is_the_longest_by_count() -> None:
    steps = [
        step("a", [], None, "pending"),
        step("b", ["a"], None, "pending"),
        step("c", [], None, "pending"),
    ]
    assert critical_path(steps) == ["a", "b"]


def test_a_cyclic_plan_is_drawn_without_looping() -> None:
    steps = [step("a", ["b"], 1.0), step("b", ["a"], 1.0)]
    assert len(dag(steps)["nodes"]) == 2
    assert set(critical_path(steps)) <= {"a", "b"}


def test_attempts_match_outcomes_by_cause_and_record_hedges_and_reassignments() -> None:
    first = env(StepRequested(step_id="s", role="coder", model="m1"), 1, attempt=0)
    hedge = env(StepRequested(step_id="s", role="coder", prompt_variant="hedge"), 2, attempt=1)
    worker = Sender(role="coder", instance="coder-1")
    log = [
        first,
        hedge,
        env(
            StepFailed(step_id="s", error_class="transient", error="boom"),
            3,
            causes=[first.message_id],
            sender=worker,
            attempt=0,
        ),
        env(StepReassigned(step_id="s", after_attempt=0, reason="stuck", model="m2"), 4),
        env(
            StepCompleted(step_id="s", duration_s=2.5),
            5,
            causes=[hedge.message_id],
            sender=worker,
            attempt=1,
        ),
        env(StepCancelled(step_id="s", request_ids=[first.message_id], reason="hedge_lost"), 6),
    ]
    (a0, a1) = attempts(log)["s"]
    assert (a0["outcome"], a0["error"], a0["model"]) == ("failed", "boom", "m1")
    assert a0["reassigned"]["reason"] == "stuck"
    assert a0["cancelled"] == "hedge_lost"
    assert (a1["outcome"], a1["hedge"], a1["duration_s"], a1["worker"]) == (
        "completed",
        True,
        2.5,
        "coder-1",
    )


def test_causal_order_puts_causes_and_smaller_vector_clocks_first() -> None:
    a = env(TaskCompleted(), 0, vclock={"x": 1})
    b = env(TaskCompleted(), 1, vclock={"x": 2, "y": 1})
    c = env(TaskCompleted(), 2, causes=[])
    # Log order c, b, a: a happened before b (vclock), and b caused c.
    c = c.model_copy(update={"causes": [b.message_id]})
    assert causal_order([c, b, a]) == [2, 1, 0]
    assert causal_order([a, b, c]) == [0, 1, 2]
    assert happened_before({"x": 1}, {"x": 1, "y": 1})
    assert not happened_before({"x": 2}, {"y": 1})
    assert not happened_before({}, {"x": 1})


def test_a_ballot_has_candidates_votes_with_rationale_tests_and_decision() -> None:
    asked = VoteRequested(
        proposal_id="t/answer",
        candidates=[Candidate(candidate_id="c1")],
        electorate=["r0", "r1"],
        partition_mode="ap",
    )
    votes = [
        env(Vote(proposal_id="t/answer", voter="r1", choice="c1", rationale="good"), 3),
        env(Vote(proposal_id="t/answer", voter="r0", kind="reject", rationale="bad"), 2),
    ]
    log = [
        env(asked, 1),
        env(
            AnswerVerified(proposal_id="t/answer", voter="r0", passed=False, summary="1 failed"), 2
        ),
        env(
            Decision(
                decision_id="d",
                proposal_id="t/answer",
                ballot=1,
                outcome="c1",
                quorum=1,
                provisional=True,
            ),
            4,
        ),
        env(TaskCompleted(tests_passed=False, tests_summary="1 of 3 failed"), 5),
    ]
    (b,) = ballots(log, [*votes, votes[0]])
    assert [(v["voter"], v["kind"], v["rationale"]) for v in b["votes"]] == [
        ("r0", "reject", "bad"),
        ("r1", "choice", "good"),
    ]
    assert (b["status"], b["partition_mode"], b["electorate"]) == (
        "provisional",
        "ap",
        ["r0", "r1"],
    )
    assert b["verifications"][0]["passed"] is False
    verdict = verdict_of_tests(log)
    assert verdict is not None
    assert (verdict["passed"], verdict["summary"]) == (False, "1 of 3 failed")
    assert verdict_of_tests(log[:1]) is None


def test_the_list_filter() -> None:
    row = {"task_id": "T-1", "goal": "Parse CSV", "state": "running", "labels": {"team": "a"}}
    assert matches(row, query="csv")
    assert matches(row, query="t-1", state="running", label="team=a")
    assert not matches(row, state="completed")
    assert not matches(row, label="team=b")
    assert not matches(row, query="json")
