"""TaskView folds a task's envelopes into a status whatever order they arrive in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from synod.core.taskview import PREVIEW_CHARS, TaskIndex, TaskView, add_usage
from synod.wire import (
    Body,
    Candidate,
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
    VoteRequested,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PLANNER = Sender(role="planner", instance="planner-0")
TASK = "t-1"


def env(body: Body, seconds: float, *, task_id: str = TASK, sender: Sender = PLANNER) -> Any:
    return Envelope.new(
        body, sender=sender, task_id=task_id, created_at=T0 + timedelta(seconds=seconds)
    )


def lifecycle(task_id: str = TASK) -> list[Any]:
    """A task's log, in log order: submitted, planned, two steps, a vote, the outcome."""
    usage = Usage(model="m", calls=1, input_tokens=10, output_tokens=5, cost_usd=0.01)
    return [
        env(
            TaskSubmitted(goal="write fizzbuzz", reviewers=3),
            0,
            task_id=task_id,
            sender=Sender(role="gateway", instance="gateway-0"),
        ),
        env(
            PlanProposed(
                plan_id="p1",
                steps=[
                    PlanStep(step_id="s1", role="researcher", title="look"),
                    PlanStep(step_id="s2", role="coder", title="code", depends_on=["s1"]),
                ],
            ),
            1,
            task_id=task_id,
        ),
        env(StepRequested(step_id="s1", plan_id="p1", role="researcher"), 2, task_id=task_id),
        env(
            StepCompleted(step_id="s1", output="notes", usage=usage, duration_s=1.5),
            3,
            task_id=task_id,
        ),
        env(StepRequested(step_id="s2", plan_id="p1", role="coder"), 4, task_id=task_id),
        env(
            StepCompleted(step_id="s2", output="x" * 1000, usage=usage, duration_s=2.0),
            5,
            task_id=task_id,
        ),
        env(
            VoteRequested(
                proposal_id=f"{task_id}/answer",
                candidates=[Candidate(candidate_id="c1")],
                electorate=["reviewer-0", "reviewer-1", "reviewer-2"],
            ),
            6,
            task_id=task_id,
        ),
        env(
            Decision(
                decision_id=f"{task_id}/answer/decision",
                proposal_id=f"{task_id}/answer",
                ballot=1,
                outcome="c1",
                tally={"c1": 3.0},
                quorum=2,
                votes_counted=3,
            ),
            7,
            task_id=task_id,
            sender=Sender(role="consensus", instance="consensus-0"),
        ),
        env(TaskCompleted(result="def fizzbuzz(): ...", plan_id="p1"), 8, task_id=task_id),
    ]


def fold(envelopes: list[Any], offsets: list[int | None] | None = None) -> TaskView:
    view = TaskView(TASK)
    for i, e in enumerate(envelopes):
        view.apply(e, offsets[i] if offsets else None)
    return view


def test_a_whole_lifecycle_folds_into_the_status() -> None:
    log = lifecycle()
    view = fold(log, list(range(len(log))))
    status = view.status()
    assert status.state == "completed"
    assert view.terminal
    assert status.goal == "write fizzbuzz"
    assert status.request is not None
    assert status.request.reviewers == 3
    assert status.plan_id == "p1"
    assert [(s.step_id, s.status, s.role) for s in status.steps] == [
        ("s1", "completed", "researcher"),
        ("s2", "completed", "coder"),
    ]
    assert status.steps[1].depends_on == ["s1"]
    assert status.steps[0].duration_s == 1.5
    assert status.steps[0].output_preview == "notes"
    assert len(status.steps[1].output_preview) == PREVIEW_CHARS
    assert status.steps[1].output_chars == 1000
    assert status.votes[0].electorate == ["reviewer-0", "reviewer-1", "reviewer-2"]
    assert status.votes[0].decision == status.decision
    assert status.decision is not None
    assert (status.decision.outcome, status.decision.quorum) == ("c1", 2)
    assert status.decision.tally == {"c1": 3.0}
    assert not status.decision.provisional
    assert status.result == "def fizzbuzz(): ..."
    assert status.failure is None
    assert status.usage.calls == 2
    assert status.usage.cost_usd == pytest.approx(0.02)
    assert status.submitted_at == T0
    assert status.finished_at == T0 + timedelta(seconds=8)
    assert [e.type for e in status.events] == [e.type for e in log]
    assert [e.message_id for e in status.events] == [e.message_id for e in log]
    assert status.events[-1].sender.role == "planner"


@pytest.mark.parametrize(
    ("upto", "state"),
    [(1, "submitted"), (2, "planning"), (3, "running"), (7, "voting"), (8, "voting")],
)
def test_states_follow_the_phase_of_the_log(upto: int, state: str) -> None:
    # Unlogged (offset None): a submission only its submitter has seen.
    assert fold(lifecycle()[:upto]).state == state


def test_a_submission_in_the_log_means_the_planner_accepted_it() -> None:
    submitted = lifecycle()[0]
    view = TaskView(TASK)
    assert view.apply(submitted) is True
    assert view.state == "submitted"
    # The planner's copy (same message id) in synod.task-events.
    assert view.apply(submitted, log_offset=0) is True
    assert view.state == "planning"
    assert len(view) == 1
    assert view.events()[0].log_offset == 0


def test_duplicates_change_nothing() -> None:
    log = lifecycle()
    view = fold(log, list(range(len(log))))
    before, version = view.to_json(), view.version
    for i, e in enumerate(log):
        assert view.apply(e, i) is False
        assert view.apply(e) is False  # the outcome's copy from synod.results
        assert view.apply(e, i + 100) is False  # a later copy in the log
    assert view.to_json() == before
    assert view.version == version


@pytest.mark.parametrize("seed", range(20))
def test_any_arrival_order_gives_the_log_order_status(seed: int) -> None:
    log = lifecycle()
    expected = fold(log, list(range(len(log)))).to_json()
    arrivals = list(enumerate(log))
    random.Random(seed).shuffle(arrivals)
    view = TaskView(TASK)
    for offset, e in arrivals:
        view.apply(e, offset)
    assert view.to_json() == expected


@pytest.mark.parametrize("seed", range(10))
def test_without_offsets_envelopes_are_ordered_by_creation_time(seed: int) -> None:
    log = lifecycle()
    expected = fold(log).status()
    shuffled = log[:]
    random.Random(seed).shuffle(shuffled)
    got = fold(shuffled).status()
    assert [e.message_id for e in got.events] == [e.message_id for e in expected.events]
    assert got.state == expected.state == "completed"


def test_the_outcome_from_results_goes_after_the_log_and_takes_its_log_place_later() -> None:
    log = lifecycle()
    outcome = log[-1]
    view = TaskView(TASK)
    view.apply(outcome)  # synod.results is read first
    assert view.state == "completed"
    for i, e in enumerate(log[:-1]):
        view.apply(e, i)
    # Logged events first; the outcome (not yet in the log) last.
    assert [e.type for e in view.events()][-1] == "TaskCompleted"
    assert view.state == "completed"
    assert view.apply(outcome, len(log) - 1) is True  # its copy in the log
    assert view.events()[-1].log_offset == len(log) - 1
    assert view.to_json() == fold(log, list(range(len(log)))).to_json()


def test_the_first_outcome_in_the_log_wins() -> None:
    log = lifecycle()[:3]
    failed = env(TaskFailed(reason="budget spent", error_class="budget", failed_step="s1"), 9)
    completed = env(TaskCompleted(result="late"), 10)
    view = fold([*log, failed, completed], [0, 1, 2, 3, 4])
    status = view.status()
    assert status.state == "failed"
    assert status.failure is not None
    assert (status.failure.reason, status.failure.error_class) == ("budget spent", "budget")
    assert status.failure.failed_step == "s1"
    assert status.result is None
    assert len(status.events) == 5  # recorded, but it does not reopen the task


def test_a_step_keeps_its_first_result_and_counts_every_attempts_cost() -> None:
    usage = Usage(model="a", calls=1, cost_usd=1.0)
    log = [
        lifecycle()[0],
        env(StepRequested(step_id="s1", role="coder"), 1),
        env(StepFailed(step_id="s1", error_class="transient", error="429", usage=usage), 2),
        env(StepRequested(step_id="s1", role="coder"), 3),
        env(StepCompleted(step_id="s1", output="first", usage=usage, duration_s=1.0), 4),
        env(StepCompleted(step_id="s1", output="hedge", usage=usage, duration_s=9.0), 5),
        env(StepFailed(step_id="s1", error_class="permanent", error="late"), 6),
    ]
    view = fold(log, list(range(len(log))))
    (step,) = view.status().steps
    assert (step.status, step.output_preview, step.duration_s) == ("completed", "first", 1.0)
    assert step.attempts == 2
    assert step.error == ""
    assert step.usage.calls == 3
    assert view.status().usage.cost_usd == pytest.approx(3.0)


def test_a_failed_step_shows_its_error_until_retried() -> None:
    log = [
        lifecycle()[0],
        env(StepRequested(step_id="s1", role="coder"), 1),
        env(StepFailed(step_id="s1", error_class="transient", error="timeout"), 2),
    ]
    view = fold(log, [0, 1, 2])
    (step,) = view.status().steps
    assert (step.status, step.error, step.error_class) == ("failed", "timeout", "transient")
    view.apply(env(StepRequested(step_id="s1", role="coder"), 3), 3)
    assert view.status().steps[0].status == "requested"


def test_a_carried_plan_lists_pending_steps_and_the_executed_plan_wins_over_proposals() -> None:
    carried = TaskSubmitted(
        goal="project",
        plan=[PlanStep(step_id="a"), PlanStep(step_id="b", depends_on=["a"])],
    )
    view = TaskView(TASK)
    view.apply(env(carried, 0), 0)
    assert [(s.step_id, s.status) for s in view.status().steps] == [
        ("a", "pending"),
        ("b", "pending"),
    ]
    view.apply(env(PlanProposed(plan_id="p1", steps=[PlanStep(step_id="x")]), 1), 1)
    view.apply(env(PlanProposed(plan_id="p2", steps=[PlanStep(step_id="y")]), 2), 2)
    assert [s.step_id for s in view.status().steps] == ["y"]
    view.apply(env(StepRequested(step_id="x", plan_id="p1", role="coder"), 3), 3)
    assert view.status().plan_id == "p1"
    assert [(s.step_id, s.status) for s in view.status().steps] == [("x", "requested")]


def test_a_reballot_replaces_the_request_and_a_provisional_decision_shows() -> None:
    def request(ballot: int, electorate: list[str]) -> Any:
        return VoteRequested(
            proposal_id="t-1/answer",
            ballot=ballot,
            candidates=[Candidate(candidate_id="c1")],
            electorate=electorate,
            partition_mode="ap",
        )

    decision = Decision(
        decision_id="d",
        proposal_id="t-1/answer",
        ballot=2,
        outcome="c1",
        quorum=2,
        provisional=True,
    )
    log = [
        lifecycle()[0],
        env(request(1, ["r0", "r1", "r2"]), 1),
        env(request(2, ["r0", "r1"]), 2),
        env(decision, 3),
    ]
    status = fold(log, [0, 1, 2, 3]).status()
    (vote,) = status.votes
    assert (vote.ballot, vote.electorate, vote.partition_mode) == (2, ["r0", "r1"], "ap")
    assert status.decision is not None
    assert status.decision.provisional
    assert status.state == "voting"


def test_the_outcomes_usage_is_the_total_when_it_has_one() -> None:
    total = Usage(model="m", calls=7, cost_usd=0.5)
    log = [*lifecycle()[:-1], env(TaskCompleted(result="r", usage=total, duration_s=8.0), 8)]
    status = fold(log, list(range(len(log)))).status()
    assert status.usage == total
    assert status.duration_s == 8.0


def test_an_envelope_of_another_task_is_refused() -> None:
    with pytest.raises(ValueError, match="t-2"):
        TaskView(TASK).apply(lifecycle("t-2")[0])


def test_add_usage_keeps_an_agreed_model() -> None:
    assert add_usage(Usage(model="a"), Usage(model="a")).model == "a"
    assert add_usage(Usage(), Usage(model="b")).model == "b"
    assert add_usage(Usage(model="a"), Usage(model="b")).model == "mixed"


def test_the_status_is_json() -> None:
    log = lifecycle()
    doc = fold(log, list(range(len(log)))).to_json()
    assert doc["state"] == "completed"
    assert doc["submitted_at"] == "2026-11-28T12:00:00Z"
    assert doc["events"][0] == {
        "type": "TaskSubmitted",
        "message_id": log[0].message_id,
        "sender": {"role": "gateway", "instance": "gateway-0"},
        "created_at": "2026-11-28T12:00:00Z",
        "log_offset": 0,
        "causes": [],
        "vclock": {},
        "lamport": 0,
        "hlc": 0,
        "causal_gap": [],
    }


def test_each_event_carries_its_clocks_and_a_gap_mark() -> None:
    log = [
        e.model_copy(update={"vclock": {"p": i + 1}, "lamport": i + 1})
        for i, e in enumerate(lifecycle())
    ]
    view = fold(log, list(range(len(log))))
    view.mark_gap(log[1].message_id, frozenset({"lost-cause"}))
    events = view.to_json()["events"]
    assert [e["vclock"] for e in events] == [{"p": i + 1} for i in range(len(log))]
    assert events[1]["causal_gap"] == ["lost-cause"]
    assert events[0]["causal_gap"] == []


# ---------------------------------------------------------------- index


def test_the_index_routes_by_task_and_ignores_duplicates_and_untasked() -> None:
    index = TaskIndex()
    for task_id in ("a", "b"):
        for i, e in enumerate(lifecycle(task_id)):
            assert index.apply(e, i) is not None
    assert len(index) == 2
    assert "a" in index
    assert "c" not in index
    view = index.get("a")
    assert view is not None
    assert view.state == "completed"
    first = index.get("b")
    assert first is not None
    assert index.apply(first.envelopes()[0], 0) is None
    heartbeat_like = Envelope.new(TaskFailed(reason="x"), sender=PLANNER, task_id="z").model_copy(
        update={"task_id": None}
    )
    assert index.apply(heartbeat_like) is None


def test_the_index_evicts_the_least_recently_updated_task() -> None:
    index = TaskIndex(capacity=2)
    index.apply(lifecycle("a")[0])
    index.apply(lifecycle("b")[0])
    index.apply(lifecycle("a")[1])  # a is now the most recently updated
    index.apply(lifecycle("c")[0])
    assert "b" not in index
    assert [v.task_id for v in index] == ["c", "a"]
    assert index.evicted == 1


def test_a_duplicate_does_not_refresh_a_task() -> None:
    index = TaskIndex(capacity=2)
    a0 = lifecycle("a")[0]
    index.apply(a0)
    index.apply(lifecycle("b")[0])
    index.apply(a0)  # a duplicate is no update
    index.apply(lifecycle("c")[0])
    assert "a" not in index
    assert "b" in index


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        TaskIndex(capacity=0)
