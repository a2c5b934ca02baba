"""TaskMachine and the supervisor's orders: StepReassigned and quarantined reviewers."""

from __future__ import annotations

from typing import Any

from synod.core.task.machine import Publish, TaskConfig, TaskMachine, electorate
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
    actions = [a for a in machine.next_actions() if isinstance(a, Publish)]
    for a in actions:
        machine.apply(env(a.body, message_id=a.message_id, attempt=a.attempt))
    return actions


def started(**config: Any) -> TaskMachine:
    machine = TaskMachine("t1", TaskConfig(**config))
    plan = [PlanStep(step_id="c", role="coder", title="code")]
    machine.apply(env(TaskSubmitted(goal="g", reviewers=3, plan=plan)))
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
    machine.apply(reassigned(0, "stuck", temperature=0.9, prompt_variant="rephrase"))
    [again] = run(machine)
    assert again.attempt == 1
    assert isinstance(again.body, StepRequested)
    assert (again.body.model, again.body.temperature, again.body.prompt_variant) == (
        "m-b",
        0.9,
        "rephrase",
    )
    assert machine.next_actions() == []  # one new attempt, not one per fold


def test_a_reassignment_grants_an_attempt_beyond_the_budget() -> None:
    machine = started(max_step_attempts=2)
    machine.apply(failed(0))
    run(machine)
    machine.apply(reassigned(1, "loop"))  # judged on attempt 1's failure
    machine.apply(failed(1))
    [third] = run(machine)
    assert (third.attempt, third.body.model) == (2, "m-b")
    machine.apply(env(StepCompleted(step_id="c", output="fine"), attempt=2))
    [vote] = run(machine)
    assert isinstance(vote.body, VoteRequested)


def test_without_the_reassignment_the_same_failures_end_the_task() -> None:
    machine = started(max_step_attempts=2)
    machine.apply(failed(0))
    run(machine)
    machine.apply(failed(1))
    [outcome] = run(machine)
    assert type(outcome.body).__name__ == "TaskFailed"


def test_a_finished_step_is_never_redone() -> None:
    machine = started()
    machine.apply(env(StepCompleted(step_id="c", output="fine"), attempt=0))
    machine.apply(reassigned(0, "stuck"))
    actions = run(machine)
    assert [type(a.body).__name__ for a in actions] == ["VoteRequested"]


def test_a_finished_task_ignores_reassignments() -> None:
    machine = started()
    machine.apply(env(TaskCompleted(result="x"), message_id="done"))
    machine.apply(reassigned(0, "loop"))
    assert machine.next_actions() == []


def test_a_looping_revision_is_dropped_and_the_new_attempt_gets_a_round_of_its_own() -> None:
    machine = started(max_answer_rounds=2)
    machine.apply(env(StepCompleted(step_id="c", output="wrong"), attempt=0))
    [vote1] = run(machine)
    decision = Decision(
        decision_id="d1", proposal_id=vote1.body.proposal_id, ballot=1, outcome="rejected", quorum=2
    )
    machine.apply(env(decision))
    [revision] = run(machine)
    assert (revision.attempt, revision.body.prompt_variant) == (1, "revise-2")
    machine.apply(env(StepCompleted(step_id="c", output="wrong"), attempt=1))  # the loop
    [vote2] = run(machine)
    assert vote2.body.proposal_id == "t1/answer-2"
    machine.apply(reassigned(1, "loop"))  # arrives after round 2 was put to the vote
    [fresh] = run(machine)
    assert (fresh.attempt, fresh.body.model) == (2, "m-b")
    machine.apply(env(StepCompleted(step_id="c", output="wrong"), attempt=1, message_id="dup"))
    assert "c" not in machine.completed  # the looping attempt no longer counts
    machine.apply(env(StepCompleted(step_id="c", output="right"), attempt=2))
    [vote3] = run(machine)
    assert vote3.body.proposal_id == "t1/answer-3"
    assert vote3.body.candidates[0].content == "right"


def test_a_reassignment_folded_before_the_vote_the_loop_caused_still_gets_a_new_round() -> None:
    machine = started(max_answer_rounds=2)
    machine.apply(env(StepCompleted(step_id="c", output="wrong"), attempt=0))
    assert len(run(machine)) == 1  # round 1
    machine.apply(
        env(
            Decision(
                decision_id="d1", proposal_id="t1/answer", ballot=1, outcome="rejected", quorum=2
            )
        )
    )
    run(machine)  # the revision, attempt 1
    machine.apply(env(StepCompleted(step_id="c", output="wrong"), attempt=1))
    [vote2] = machine.next_actions()  # asked for, but not in the log yet
    machine.apply(reassigned(1, "loop"))  # the log has the reassignment first
    assert isinstance(vote2, Publish)
    machine.apply(env(vote2.body, message_id=vote2.message_id))
    [fresh] = run(machine)
    assert (fresh.attempt, fresh.body.model) == (2, "m-b")
    machine.apply(env(StepCompleted(step_id="c", output="right"), attempt=2))
    machine.apply(
        env(
            Decision(
                decision_id="d2", proposal_id="t1/answer-2", ballot=1, outcome="rejected", quorum=2
            )
        )
    )
    [vote3] = run(machine)
    assert vote3.body.proposal_id == "t1/answer-3"
    assert vote3.body.candidates[0].content == "right"


def test_the_reassignment_is_folded_once() -> None:
    machine = started()
    machine.apply(reassigned(0, "stuck"))
    assert not machine.apply(reassigned(0, "stuck"))
    assert machine.extra_attempts == {"c": 1}


def test_quarantined_reviewers_are_left_out_and_the_next_stands_in() -> None:
    assert electorate(3, frozenset()) == ["reviewer-0", "reviewer-1", "reviewer-2"]
    assert electorate(3, frozenset({"reviewer-1"})) == ["reviewer-0", "reviewer-2", "reviewer-3"]
    machine = started()
    machine.quarantined = frozenset({"reviewer-0"})
    machine.apply(env(StepCompleted(step_id="c", output="fine"), attempt=0))
    [vote] = run(machine)
    assert vote.body.electorate == ["reviewer-1", "reviewer-2", "reviewer-3"]
