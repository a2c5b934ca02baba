"""`synod check` on the blackboard: a step handed a fact not written, or in `strong`
not decided, before its request is flagged; an honest log of either kind passes."""

from __future__ import annotations

from typing import Any

from tests.logs import EVENTS, Log

from synod.core.check import check
from synod.wire import Envelope
from synod.wire.messages import FactPublished, StepCompleted, StepRequested, TaskSubmitted


def research_then_code(
    consistency: str, *, code_before_done: bool
) -> tuple[Log, dict[str, Envelope[Any]]]:
    """A researcher publishes a fact; the coder's request names it, after the researcher
    completed (honest in both modes) or before (honest in `eventual` only)."""
    log = Log("t-1")
    sub = log.send("planner-0", EVENTS, TaskSubmitted(goal="g", consistency=consistency))  # type: ignore[arg-type]
    req_r = log.send(
        "planner-0", EVENTS, StepRequested(step_id="r1", role="researcher"), because=sub
    )
    fact = FactPublished(fact_id="f1", step_id="r1", key="approach", value="A")
    published = log.send("researcher-0", EVENTS, fact, because=req_r, message_id="f1")
    code = StepRequested(step_id="c1", role="coder", facts=["f1"])
    if code_before_done:
        req_c = log.send("planner-0", EVENTS, code, because=published)
        done = log.send("researcher-0", EVENTS, StepCompleted(step_id="r1"), because=req_r)
    else:
        done = log.send("researcher-0", EVENTS, StepCompleted(step_id="r1"), because=req_r)
        req_c = log.send("planner-0", EVENTS, code, because=done)
    return log, {"fact": published, "done": done, "code": req_c}


def test_honest_strong_and_eventual_logs_pass() -> None:
    for consistency, early in (("strong", False), ("eventual", False), ("eventual", True)):
        log, _ = research_then_code(consistency, code_before_done=early)
        report = check(log.records)
        assert report.ok, report.text()
        assert report.facts_read == 1


def test_a_strong_step_handed_an_undecided_fact_is_flagged() -> None:
    log, m = research_then_code("strong", code_before_done=True)
    report = check(log.records)
    assert [v.kind for v in report.violations] == ["undecided_fact_read"]
    (v,) = report.violations
    assert v.message_id == m["code"].message_id
    assert "fact f1 of step r1 attempt 0, which had not completed" in v.detail


def test_a_fact_of_another_attempt_is_not_decided_by_this_ones_completion() -> None:
    log, m = research_then_code("strong", code_before_done=False)
    retry = FactPublished(fact_id="f2", step_id="r1", key="approach", value="B")
    log.send("researcher-0", EVENTS, retry, because=m["done"], message_id="f2", attempt=1)
    log.send("planner-0", EVENTS, StepRequested(step_id="c2", role="coder", facts=["f2"]))
    assert [v.kind for v in check(log.records).violations] == ["undecided_fact_read"]


def test_a_step_handed_a_fact_that_is_not_on_the_log_is_flagged() -> None:
    log, m = research_then_code("eventual", code_before_done=False)
    forged = StepRequested(step_id="c2", role="coder", facts=["f-nowhere"])
    env = log.send("planner-0", EVENTS, forged, because=m["done"])
    report = check(log.records)
    assert [v.kind for v in report.violations] == ["unwritten_fact_read"]
    assert report.violations[0].message_id == env.message_id
    assert "not on the log" in report.violations[0].detail
