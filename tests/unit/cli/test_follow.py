"""RunLog: a run's numbers folded from the task's log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from synod.cli.follow import RunLog
from synod.core.plan.dag import load_project
from synod.wire import (
    Envelope,
    Sender,
    StepCompleted,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    Usage,
)
from synod.wire.messages import StepCancelled, StepClaimed

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLAN = load_project(
    {
        "project": "p",
        "tasks": [
            {"id": "a", "files": ["a.py"]},
            {"id": "b", "files": ["b.py"]},
            {"id": "c", "dependencies": ["a", "b"], "files": ["c.py"]},
        ],
    }
)


def _env(body: object, at: float, mid: str, task: str = "t") -> Envelope[object]:
    env = Envelope.new(
        body, sender=Sender(role="planner", instance="x"), task_id=task, message_id=mid
    )  # type: ignore[arg-type]
    return env.model_copy(update={"created_at": T0 + timedelta(seconds=at)})


def _done(step: str, at: float, took: float, mid: str) -> Envelope[object]:
    usage = Usage(input_tokens=10, output_tokens=5)
    return _env(StepCompleted(step_id=step, duration_s=took, usage=usage), at, mid)


def test_the_report_uses_the_first_result_and_measured_durations() -> None:
    log = RunLog("t")
    for env in [
        _env(StepRequested(step_id="a", role="coder"), 0, "ra"),
        _env(StepRequested(step_id="b", role="coder"), 0, "rb"),
        _done("a", 1, 1.0, "ca"),
        _done("b", 2, 2.0, "cb"),
        _env(StepRequested(step_id="c", role="coder"), 2, "rc"),
        _env(StepRequested(step_id="c", role="coder", prompt_variant="hedge"), 3, "rc2"),
        _done("c", 5, 3.0, "cc"),
        _env(StepCancelled(step_id="c", request_ids=["rc2"], reason="hedge_lost"), 5, "x"),
        _done("c", 6, 4.0, "cc2"),  # the loser: ignored
        _done("c", 6, 4.0, "cc2"),  # a redelivery: not a new message
        _env(StepRequested(step_id="a", role="coder"), 0, "other", task="u"),
        _env(TaskCompleted(), 7, "out"),
    ]:
        log.apply(env)
    assert log.done
    report = log.report(PLAN, mode="synod", n=2)
    assert report.makespan_s == pytest.approx(5.0)  # first request to last winning result
    assert report.total_work_s == pytest.approx(6.0)  # 1 + 2 + 3: the loser does not count
    assert report.one_agent_makespan_s == pytest.approx(6.0)
    assert report.graph_bound_s == pytest.approx(5.0)  # chain b -> c
    assert report.hedges == 1
    assert report.cancels == 1
    assert report.tokens == 4 * 15  # both results of c were paid for
    assert report.messages == 10  # the redelivery and the other task are not counted
    assert log.completions["c"] == 2


def test_a_log_missing_a_step_cannot_be_reported() -> None:
    log = RunLog("t")
    log.apply(_env(StepRequested(step_id="a", role="coder"), 0, "ra"))
    log.apply(_done("a", 1, 1.0, "ca"))
    with pytest.raises(ValueError, match="b, c"):
        log.report(PLAN, mode="synod", n=2)


def test_tests_passed_is_the_outcome_s() -> None:
    log = RunLog("t")
    assert log.tests_passed is None
    for i, step in enumerate(("a", "b", "c")):
        log.apply(_env(StepRequested(step_id=step, role="coder"), i, f"r{step}"))
        log.apply(_done(step, i + 1, 1.0, f"c{step}"))
    summary = "3 passed, 1 failed: tests.test_c::test_c"
    log.apply(
        _env(TaskFailed(reason="rejected", tests_passed=False, tests_summary=summary), 9, "o")
    )
    assert log.tests_passed is False
    assert log.tests_summary == summary
    assert log.report(PLAN, mode="synod", n=2, tests_passed=log.tests_passed).tests_passed is False


def test_blocked_claims_are_counted_from_the_claims_in_the_log() -> None:
    log = RunLog("t")
    for env in [
        _env(StepClaimed(step_id="a", agent=0), 0, "ka"),
        _env(StepClaimed(step_id="b", agent=1), 0, "kb"),
        _env(StepRequested(step_id="a", role="coder", agent=0), 0, "ra"),
        _env(StepRequested(step_id="b", role="coder", agent=1), 0, "rb"),
        _done("a", 1, 1.0, "ca"),
        _env(StepClaimed(step_id="c", agent=0, blocked_on=["b"]), 1, "kc"),  # slot 0 waits
        _env(StepClaimed(step_id="c", agent=0, blocked_on=["b"]), 1, "kc"),  # redelivered
        _done("b", 2, 2.0, "cb"),
        _env(StepRequested(step_id="c", role="coder", agent=0), 2, "rc"),
        _done("c", 3, 1.0, "cc"),
        _env(TaskCompleted(), 4, "out"),
    ]:
        log.apply(env)
    report = log.report(PLAN, mode="claim", n=2)
    assert report.blocked_claims == 1
    assert report.messages == 10
    assert report.hedges == report.cancels == 0
