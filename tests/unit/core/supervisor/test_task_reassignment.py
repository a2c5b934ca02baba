"""TaskMachine and the supervisor's orders: StepReassigned and quarantined reviewers."""

from __future__ import annotations

from typing import Any

from tests.taskcore import decided, fold

from synod.core.task import Publish, Quarantined, TaskConfig, TaskMachine, electorate
from synod.wire import (
    Body,
    Decision,
    Envelope,
    PlanStep,
    Sender,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskCompleted,
    TaskSubmitted,
    VoteRequested,
)
from synod.wire.messages import StepReassigned

PLANNER = Sender(role="planner", instance="planner-0")
SUPERVISOR = Sender(role="supervisor", instance="supervisor-0")


def env(body: Body, sender: Sender = PLANNER, **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=sender, task_id="t1", **kw)


def run(machine: TaskMachine) -> list[Publish]:
    """Take the next actions and fold them back, as the log would."""
    actions = [a for a in decided(machine) if isinstance(a, Publish)]
    for a in actions:
        fold(machine, env(a.body, message_id=a.message_id, attempt=a.attempt))
    return actions


def started(**config: Any) -> TaskMachine:
    machine = TaskMachine("t1", TaskConfig(**config))
    plan = [PlanStep(step_id="c", role="coder", title="code")]
    fold(machine, env(TaskSubmitted(goal="g", reviewers=3, plan=plan)))
    run(machine)  # the plan
    [request] = run(machine)
    assert request.attempt == 0
    return machine


def reassigned(after: int, reason: str, **kw: Any) -> Envelope[Any]:
    body = StepReassigned(step_id="c", after_attempt=after, reason=reason, model="m-b", **kw)
    return env(body, sender=SUPERVISOR, message_id=f"re-{after}-{reason}")


def failed(attempt: int, reason: str = "invalid_output") -> Envelope[Any]:
    body = StepFailed(step_id="c", error_class="permanent", error="bad", reason=reason)
    return env(body, attempt=attempt, message_id=f"f{attempt}")


def test_a_stuck_attempt_is_replaced_by_a_new_one_with_the_new_parameters() -> None:
    machine = started()
    fold(machine, reassigned(0, "stuck", temperature=0.9, prompt_variant="rephrase"))
    [again] = run(machine)
    assert again.attempt == 1
    assert isinstance(again.body, StepRequested)
    assert (again.body.model, again.body.temperature, again.body.prompt_variant) == (
        "m-b",
        0.9,
        "rephrase",
    )
    assert decided(machine) == []  # one new attempt, not one per fold


def test_a_reassignment_grants_an_attempt_beyond_the_budget() -> None:
    machine = started(max_step_attempts=2)
    fold(machine, failed(0))
    run(machine)
    fold(machine, reassigned(1, "loop"))  # judged on attempt 1's failure
    fold(machine, failed(1))
    [third] = run(machine)
    assert (third.attempt, third.body.model) == (2, "m-b")
    fold(machine, env(StepCompleted(step_id="c", output="fine"), attempt=2))
    [vote] = run(machine)
    assert isinstance(vote.body, VoteRequested)


def test_without_the_reassignment_the_same_failures_end_the_task() -> None:
    machine = started(max_step_attempts=2)
    fold(machine, failed(0))
    run(machine)
    fold(machine, failed(1))
    [outcome] = run(machine)
    assert type(outcome.body).__name__ == "TaskFailed"


def test_a_finished_step_is_never_redone() -> None:
    machine = started()
    fold(machine, env(StepCompleted(step_id="c", output="fine"), attempt=0))
    fold(machine, reassigned(0, "stuck"))
    actions = run(machine)
    assert [type(a.body).__name__ for a in actions] == ["VoteRequested"]


def test_a_finished_task_ignores_reassignments() -> None:
    machine = started()
    fold(machine, env(TaskCompleted(result="x"), message_id="done"))
    fold(machine, reassigned(0, "loop"))
    assert decided(machine) == []


def test_a_looping_revision_is_dropped_and_the_new_attempt_gets_a_round_of_its_own() -> None:
    machine = started(max_answer_rounds=2)
    fold(machine, env(StepCompleted(step_id="c", output="wrong"), attempt=0))
    [vote1] = run(machine)
    decision = Decision(
        decision_id="d1", proposal_id=vote1.body.proposal_id, ballot=1, outcome="rejected", quorum=2
    )
    fold(machine, env(decision))
    [revision] = run(machine)
    assert (revision.attempt, revision.body.prompt_variant) == (1, "revise-2")
    fold(machine, env(StepCompleted(step_id="c", output="wrong"), attempt=1))  # the loop
    [vote2] = run(machine)
    assert vote2.body.proposal_id == "t1/answer-2"
    fold(machine, reassigned(1, "loop"))  # arrives after round 2 was put to the vote
    [fresh] = run(machine)
    assert (fresh.attempt, fresh.body.model) == (2, "m-b")
    fold(machine, env(StepCompleted(step_id="c", output="wrong"), attempt=1, message_id="dup"))
    assert "c" not in machine.completed  # the looping attempt no longer counts
    fold(machine, env(StepCompleted(step_id="c", output="right"), attempt=2))
    [vote3] = run(machine)
    assert vote3.body.proposal_id == "t1/answer-3"
    assert vote3.body.candidates[0].content == "right"


def test_a_reassignment_folded_before_the_vote_the_loop_caused_still_gets_a_new_round() -> None:
    machine = started(max_answer_rounds=2)
    fold(machine, env(StepCompleted(step_id="c", output="wrong"), attempt=0))
    assert len(run(machine)) == 1  # round 1
    fold(
        machine,
        env(
            Decision(
                decision_id="d1", proposal_id="t1/answer", ballot=1, outcome="rejected", quorum=2
            )
        ),
    )
    run(machine)  # the revision, attempt 1
    fold(machine, env(StepCompleted(step_id="c", output="wrong"), attempt=1))
    [vote2] = decided(machine)  # asked for, but not in the log yet
    fold(machine, reassigned(1, "loop"))  # the log has the reassignment first
    assert isinstance(vote2, Publish)
    fold(machine, env(vote2.body, message_id=vote2.message_id))
    [fresh] = run(machine)
    assert (fresh.attempt, fresh.body.model) == (2, "m-b")
    fold(machine, env(StepCompleted(step_id="c", output="right"), attempt=2))
    fold(
        machine,
        env(
            Decision(
                decision_id="d2", proposal_id="t1/answer-2", ballot=1, outcome="rejected", quorum=2
            )
        ),
    )
    [vote3] = run(machine)
    assert vote3.body.proposal_id == "t1/answer-3"
    assert vote3.body.candidates[0].content == "right"


def test_the_reassignment_is_folded_once() -> None:
    machine = started()
    fold(machine, reassigned(0, "stuck"))
    assert not fold(machine, reassigned(0, "stuck"))
    assert machine.extra_attempts == {"c": 1}


def test_quarantined_reviewers_are_left_out_and_the_next_stands_in() -> None:
    assert electorate(3, frozenset()) == ["reviewer-0", "reviewer-1", "reviewer-2"]
    assert electorate(3, frozenset({"reviewer-1"})) == ["reviewer-0", "reviewer-2", "reviewer-3"]
    machine = started()
    machine.step(Quarantined(frozenset({"reviewer-0"})))
    fold(machine, env(StepCompleted(step_id="c", output="fine"), attempt=0))
    [vote] = run(machine)
    assert vote.body.electorate == ["reviewer-1", "reviewer-2", "reviewer-3"]
