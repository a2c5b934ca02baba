"""The oracle fails, naming the record, on logs doctored with each kind of violation.

Every forgery is built as services would build it (stamped by the real Stamper),
then written and read back with the real codec, so the oracle sees what the
broker would hand it; an honest log of the same task passes."""

from __future__ import annotations

from typing import Any

from tests.logs import Log, honest

from synod.core.check import KINDS, LogRecord, check
from synod.transport.causal import HANDLING, Stamper
from synod.wire import Envelope, Sender, StepRequested
from synod.wire.messages import (
    Candidate,
    Decision,
    Reconciled,
    StepCompleted,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    Vote,
    VoteRequested,
)

TASK = "t-1"
EVENTS, VOTES, WORKSPACE = "synod.task-events", "synod.votes", "synod.workspace"


def kinds(log: Log) -> list[str]:
    return [v.kind for v in check(log.records).violations]


def test_an_honest_log_passes() -> None:
    log, _ = honest()
    report = check(log.records)
    assert report.ok, report.text()
    assert report.tasks == 1
    assert report.terminal == 1
    assert report.decisions == 1
    assert report.writes == 1
    assert report.causes >= 8


def test_a_decision_with_no_votes_behind_it_fails_naming_the_decision() -> None:
    log, m = honest()
    forged = Decision(decision_id="p2/decision", proposal_id="p1", ballot=2, outcome="c1", quorum=2)
    env = log.send("consensus-0", EVENTS, forged, because=m["ask"])
    report = check(log.records)
    assert [v.kind for v in report.violations] == ["decision_without_quorum"]
    assert report.violations[0].message_id == env.message_id
    assert report.violations[0].where.startswith("synod.task-events[0]@")
    assert "0 agreeing" in report.text()


def test_votes_from_outside_the_electorate_do_not_make_a_quorum() -> None:
    log, m = honest()
    for who in ("reviewer-x0", "reviewer-x1"):
        log.send(
            who, VOTES, Vote(proposal_id="p1", ballot=3, voter=who, choice="c9"), because=m["ask"]
        )
    log.send(
        "consensus-0",
        EVENTS,
        Decision(decision_id="p1/d3", proposal_id="p1", ballot=3, outcome="c9", quorum=2),
        because=m["ask"],
    )
    assert sorted(kinds(log)) == ["decided_two_ways", "decision_without_quorum"]


def test_an_effect_whose_clock_does_not_dominate_its_cause_fails() -> None:
    log, m = honest()
    # A completion that names the request but never saw it: a fresh clock of its own.
    stale = Envelope.new(
        StepCompleted(step_id="s1", output="y"),
        sender=Sender(role="coder", instance="coder-9"),
        task_id=TASK,
        causes=[m["req"].message_id],
        vclock={"coder-9": 1},
        lamport=1,
        hlc=m["req"].hlc - 1,
    )
    env = log.append(EVENTS, stale)
    report = check(log.records)
    assert [v.kind for v in report.violations] == ["cause_not_before"]
    (v,) = report.violations
    assert v.message_id == env.message_id
    assert "concurrent" in v.detail
    assert "lamport" in v.detail
    assert "hlc" in v.detail


def test_a_task_completed_twice_fails_naming_the_second() -> None:
    log, m = honest()
    again = log.send("planner-0", EVENTS, TaskCompleted(result="y", plan_id="p"), because=m["dec"])
    report = check(log.records)
    assert [v.kind for v in report.violations] == ["terminal_twice"]
    assert report.violations[0].message_id == again.message_id
    # The copy on synod.results has the same id: one event, not two.
    log2, m2 = honest()
    log2.append("synod.results", m2["end"])
    assert check(log2.records).ok


def test_completed_and_failed_fails() -> None:
    log, m = honest()
    log.send("planner-0", EVENTS, TaskFailed(reason="deadline", error="late"), because=m["dec"])
    assert kinds(log) == ["completed_and_failed"]


def test_a_missing_cause_fails() -> None:
    log, m = honest()
    orphan = log.send(
        "planner-0",
        EVENTS,
        StepCompleted(step_id="s2"),
        causes=["never-on-the-log"],
        because=m["sub"],
    )
    report = check(log.records)
    assert [v.kind for v in report.violations] == ["missing_cause"]
    assert report.violations[0].message_id == orphan.message_id


def test_an_effect_logged_before_its_cause_fails_and_a_split_task_too() -> None:
    log, m = honest()
    # Put the request's log copy after its completion (a reordered log).
    records = [
        r
        for r in log.records
        if not (r.topic == EVENTS and r.envelope.message_id == m["req"].message_id)
    ]
    records.append(LogRecord(EVENTS, 0, 99, m["req"]))
    assert "effect_before_cause" in [v.kind for v in check(records).violations]
    split = [
        *log.records,
        LogRecord(EVENTS, 3, 0, m["done"].model_copy(update={"message_id": "x"})),
    ]
    assert "task_split" in [v.kind for v in check(split).violations]


def test_a_completed_step_whose_write_is_missing_is_a_lost_write() -> None:
    log, _ = honest()
    records = [r for r in log.records if r.topic != WORKSPACE]
    report = check(records)
    kinds_found = [v.kind for v in report.violations]
    assert "lost_write" in kinds_found
    assert "a.py" in report.text()


def test_every_kind_has_a_description_and_filters_choose_tasks() -> None:
    assert set(KINDS) >= {
        "terminal_twice",
        "completed_and_failed",
        "decision_without_quorum",
        "decided_two_ways",
        "missing_cause",
        "cause_not_before",
        "task_split",
        "effect_before_cause",
        "lost_write",
    }
    log, _ = honest()
    assert check(log.records, task_id="other").tasks == 0
    doc = check(log.records).to_json()
    assert doc["ok"] is True
    assert doc["violations"] == []


def _round_request() -> VoteRequested:
    return VoteRequested(
        proposal_id="p1",
        ballot=2,
        candidates=[Candidate(candidate_id="c1", content="x")],
        electorate=["reviewer-2"],
    )


def test_of_two_copies_in_one_partition_the_first_stands_whatever_its_clocks() -> None:
    # A round request a consensus instance published, then published again under the
    # same id by the next owner after a failover, stamped anew with a smaller Lamport
    # time: the jurors handled the first copy and dropped the second (found by the
    # simulator: `synod sim --seed 1210 --tasks 3 --faults all`).
    log, m = honest()
    first = log.send("consensus-1", VOTES, _round_request(), because=m["ask"])
    again = first.model_copy(update={"vclock": {"consensus-0": 1}, "lamport": 1, "hlc": 1})
    log.append(VOTES, again)
    log.send(
        "reviewer-2",
        VOTES,
        Vote(proposal_id="p1", voter="reviewer-2", choice="c1", ballot=2),
        because=first,
    )
    report = check(log.records)
    assert report.ok, report.text()


def _stamped(stamper: Stamper, topic: str, env: Envelope[Any], cause: Envelope[Any]) -> Any:
    token = HANDLING.set(cause)
    try:
        return stamper.stamp(topic, env)
    finally:
        HANDLING.reset(token)


def test_an_effect_after_the_copy_its_author_handled_passes_though_another_came_first() -> None:
    # The `ack` outbox (ADR 0012): planner-1 logs a step request and crashes before its
    # copy goes out; planner-0 takes over before that record is readable, logs the
    # same request (same id, its own clocks) and sends its copy on. The coder handled
    # planner-0's copy, the second of the id on the task's log (found by the simulator:
    # `synod sim --seed 795 --tasks 2`).
    log = Log(TASK)
    sub = log.send("planner-0", EVENTS, TaskSubmitted(goal="g"))
    body = StepRequested(step_id="s1", role="coder", title="t", instructions="i")
    log.send("planner-1", EVENTS, body, because=sub, message_id="req-1")
    planner = Stamper("planner-0", clock_ms=lambda: 1_000_000)
    planner.observe(EVENTS, sub)  # it has not read planner-1's record
    mine = Envelope.new(
        body, sender=Sender(role="planner", instance="planner-0"), task_id=TASK, message_id="req-1"
    )
    mine = log.append(EVENTS, _stamped(planner, EVENTS, mine, sub))
    copy = log.append("synod.steps.coder", mine)
    coder = Stamper("coder-1", clock_ms=lambda: 1_000_000)
    coder.observe("synod.steps.coder", copy)
    done = Envelope.new(
        StepCompleted(step_id="s1", output="x"),
        sender=Sender(role="coder", instance="coder-1"),
        task_id=TASK,
    )
    log.append(EVENTS, _stamped(coder, EVENTS, done, copy))
    report = check(log.records)
    assert report.ok, report.text()
    # After neither copy: still flagged.
    stranger = Stamper("coder-2", clock_ms=lambda: 1_000_000)
    stale = Envelope.new(
        StepCompleted(step_id="s1", output="y"),
        sender=Sender(role="coder", instance="coder-2"),
        task_id=TASK,
        causes=["req-1"],
    )
    log.append(EVENTS, stranger.stamp(EVENTS, stale))
    assert kinds(log) == ["cause_not_before"]


def _provisional_then_heal(
    *, confirmed: bool, forge_final: bool = False, failed: bool = False
) -> tuple[Log, dict[str, Envelope[Any]]]:
    """An `ap` task: reviewer-0 alone decides provisionally, the task completes
    provisionally; after the heal reviewer-1 and reviewer-2 vote (docs/cap.md).
    `failed`: reviewer-0 rejects, the task fails provisionally, the others accept."""
    log = Log(TASK)
    sub = log.send("planner-0", EVENTS, TaskSubmitted(goal="g", partition_mode="ap"))
    ask = log.send(
        "planner-0",
        EVENTS,
        VoteRequested(
            proposal_id="p1",
            candidates=[Candidate(candidate_id="c1", content="x")],
            electorate=["reviewer-0", "reviewer-1", "reviewer-2"],
            partition_mode="ap",
        ),
        because=sub,
    )
    first_vote = (
        Vote(proposal_id="p1", voter="reviewer-0", kind="reject")
        if failed
        else Vote(proposal_id="p1", voter="reviewer-0", choice="c1")
    )
    v0 = log.send("reviewer-0", VOTES, first_vote, because=ask)
    provisional_outcome = "rejected" if failed else "c1"
    dec = log.send(
        "consensus-0",
        EVENTS,
        Decision(
            decision_id="p1/decision",
            proposal_id="p1",
            ballot=1,
            outcome=provisional_outcome,
            quorum=1,
            votes_counted=1,
            provisional=not forge_final,
            unreachable=["reviewer-1", "reviewer-2"],
        ),
        because=v0,
    )
    outcome: Any = (
        TaskFailed(reason="rejected", decision_id="p1/decision", provisional=True)
        if failed
        else TaskCompleted(result="x", decision_id="p1/decision", provisional=True)
    )
    first = log.send("planner-0", EVENTS, outcome, because=dec)
    agrees = confirmed != failed  # the later jurors choose c1
    later = [
        log.send(
            f"reviewer-{i}",
            VOTES,
            Vote(
                proposal_id="p1",
                voter=f"reviewer-{i}",
                kind="choice" if agrees else "reject",
                choice="c1" if agrees else None,
            ),
            because=ask,
        )
        for i in (1, 2)
    ]
    rec = log.send(
        "consensus-0",
        EVENTS,
        Reconciled(
            decision_id="p1/decision",
            proposal_id="p1",
            ballot=1,
            provisional_outcome=provisional_outcome,
            outcome="c1" if agrees else "rejected",
            confirmed=confirmed,
        ),
        because=later[-1],
    )
    return log, {"first": first, "rec": rec, "dec": dec}


def test_a_provisional_outcome_confirmed_after_the_heal_passes() -> None:
    log, _ = _provisional_then_heal(confirmed=True)
    report = check(log.records)
    assert report.ok, report.text()
    assert report.terminal == 1


def test_an_overturned_provisional_outcome_then_a_new_outcome_is_not_terminal_twice() -> None:
    log, m = _provisional_then_heal(confirmed=False)
    log.send("planner-0", EVENTS, TaskFailed(reason="rejected after the heal"), because=m["rec"])
    report = check(log.records)
    assert report.ok, report.text()


def test_an_overturned_provisional_failure_then_a_completion_is_not_completed_and_failed() -> None:
    log, m = _provisional_then_heal(confirmed=False, failed=True)
    log.send("planner-0", EVENTS, TaskCompleted(result="x"), because=m["rec"])
    report = check(log.records)
    assert report.ok, report.text()
    assert report.terminal == 1
    # The same failure, had it hidden that it was provisional, is flagged.
    hidden, h = _provisional_then_heal(confirmed=False, failed=True)
    forged = hidden.send(
        "planner-0",
        EVENTS,
        TaskFailed(reason="rejected", decision_id="p1/decision"),
        because=h["dec"],
    )
    report = check(hidden.records)
    assert "overturned_before_decision" in [v.kind for v in report.violations]
    assert forged.message_id in [v.message_id for v in report.violations]


def test_a_second_outcome_after_a_confirmed_provisional_one_is_terminal_twice() -> None:
    log, m = _provisional_then_heal(confirmed=True)
    again = log.send("planner-0", EVENTS, TaskCompleted(result="y"), because=m["rec"])
    report = check(log.records)
    assert [v.kind for v in report.violations] == ["terminal_twice"]
    assert report.violations[0].message_id == again.message_id


def test_reconciling_a_final_decision_is_a_forgery() -> None:
    log, m = _provisional_then_heal(confirmed=False, forge_final=True)
    log.send("planner-0", EVENTS, TaskFailed(reason="rejected"), because=m["rec"])
    report = check(log.records)
    found = sorted(v.kind for v in report.violations)
    # No provisional decision to overturn: the Reconciled is forged, so the first
    # outcome still counts and the task both completed and failed.
    assert "reconciled_not_provisional" in found
    assert "completed_and_failed" in found
    assert next(
        v for v in report.violations if v.kind == "reconciled_not_provisional"
    ).message_id == (m["rec"].message_id)


def test_an_overturned_outcome_that_hides_being_provisional_is_flagged() -> None:
    log, m = _provisional_then_heal(confirmed=False)
    hidden = log.send(
        "planner-0",
        EVENTS,
        TaskCompleted(result="x", decision_id="p1/decision", provisional=False),
        because=m["dec"],
    )
    report = check(log.records)
    assert [v.kind for v in report.violations] == ["overturned_before_decision"]
    assert report.violations[0].message_id == hidden.message_id


def test_the_task_view_says_provisional_then_overturned_then_final() -> None:
    from synod.core.taskview import TaskView

    log, _ = _provisional_then_heal(confirmed=True)
    view = TaskView(TASK)
    for r in log.records:
        view.apply(r.envelope)
    status = view.status()
    assert (status.partition_mode, status.state, status.settlement) == (
        "ap",
        "completed",
        "confirmed",
    )
    log2, _ = _provisional_then_heal(confirmed=False)
    view2 = TaskView(TASK)
    for r in log2.records:
        view2.apply(r.envelope)
    assert (view2.status().state, view2.status().settlement) == ("voting", "overturned")
    assert view2.status().overturned == [hidden_decision_id(log2)]


def hidden_decision_id(log: Any) -> str:
    """The decision the log's Reconciled overturned."""
    [verdict] = [
        r.envelope.body for r in log.records if type(r.envelope.body).__name__ == "Reconciled"
    ]
    return str(verdict.decision_id)


def test_the_task_view_says_a_provisional_failure_was_overturned() -> None:
    from synod.core.taskview import TaskView

    log, m = _provisional_then_heal(confirmed=False, failed=True)
    view = TaskView(TASK)
    for r in log.records:
        if r.envelope.message_id == m["rec"].message_id:
            status = view.status()
            assert (status.state, status.settlement) == ("failed", "provisional")
        view.apply(r.envelope)
    status = view.status()
    assert (status.state, status.settlement) == ("voting", "overturned")
    assert status.failure is None
    assert status.overturned == ["p1/decision"]
