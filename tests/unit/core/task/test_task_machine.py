"""The task state machine: fold a task's log, say what is next, derive ids."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.taskcore import decided, fold, overdue

from synod.core.task import (
    ANSWER,
    Publish,
    RequestPlan,
    TaskConfig,
    TaskMachine,
    forward_to,
)
from synod.wire import (
    Body,
    Decision,
    Envelope,
    PlanStep,
    Sender,
    StepCompleted,
    StepFailed,
    TaskSubmitted,
)

PLANNER = Sender(role="planner", instance="planner-0")
STEPS = [
    PlanStep(step_id="r", role="researcher", title="research"),
    PlanStep(step_id="a", role="coder", title="code a", depends_on=["r"]),
    PlanStep(step_id="b", role="coder", title="code b", depends_on=["r"]),
    PlanStep(step_id="t", role="coder", title="test", depends_on=["a", "b"]),
]


def env(body: Body, **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=PLANNER, task_id="t1", **kw)


def feed(machine: TaskMachine, actions: list[Any]) -> None:
    """Fold published actions back, as the log would."""
    for action in actions:
        assert isinstance(action, Publish)
        fold(machine, logged(action))


def logged(action: Publish) -> Envelope[Any]:
    return env(action.body, message_id=action.message_id, attempt=action.attempt)


def step_ids(actions: list[Any]) -> list[str]:
    return sorted(a.body.step_id for a in actions)


def submitted(**kw: Any) -> Envelope[Any]:
    return env(TaskSubmitted(goal="build it", reviewers=3, **kw))


def test_without_a_plan_the_model_is_asked_for_one() -> None:
    machine = TaskMachine("t1")
    fold(machine, submitted())
    assert decided(machine) == [RequestPlan(attempt=0)]


def test_a_given_plan_runs_critical_steps_as_they_become_ready_then_votes() -> None:
    machine = TaskMachine("t1")
    fold(machine, submitted(plan=STEPS))
    plan = decided(machine)
    assert [type(a.body).__name__ for a in plan] == ["PlanProposed"]
    feed(machine, plan)

    first = decided(machine)
    assert step_ids(first) == ["r"]
    assert forward_to(logged(first[0])) == "steps.researcher"
    feed(machine, first)
    assert decided(machine) == []  # r is out; nothing else is ready

    fold(machine, env(StepCompleted(step_id="r", output="notes")))
    parallel = decided(machine)
    assert step_ids(parallel) == ["a", "b"]
    assert all(a.body.inputs == {"r": "notes"} for a in parallel)
    assert {forward_to(logged(a)) for a in parallel} == {"steps.coder"}
    feed(machine, parallel)
    for s in ("a", "b"):
        fold(machine, env(StepCompleted(step_id=s, output=f"code {s}")))
    last = decided(machine)
    feed(machine, last)
    fold(machine, env(StepCompleted(step_id="t", output="tests pass")))

    [vote] = decided(machine)
    assert forward_to(logged(vote)) == "votes"
    assert vote.body.electorate == ["reviewer-0", "reviewer-1", "reviewer-2"]
    assert vote.body.candidates[0].content == "tests pass"  # the last coder step
    feed(machine, [vote])
    assert decided(machine) == []  # waiting for the decision

    fold(
        machine,
        env(Decision(decision_id="d", proposal_id="t1/answer", ballot=1, outcome=ANSWER, quorum=2)),
    )
    [done] = decided(machine)
    assert type(done.body).__name__ == "TaskCompleted"
    assert forward_to(logged(done)) == "results"
    feed(machine, [done])
    assert decided(machine) == []


def test_transient_failures_are_retried_then_the_task_fails() -> None:
    machine = TaskMachine("t1")
    fold(machine, submitted(plan=STEPS[:1]))
    feed(machine, decided(machine))
    for attempt in range(3):
        [request] = decided(machine)
        assert request.attempt == attempt
        feed(machine, [request])
        fold(
            machine,
            env(StepFailed(step_id="r", error_class="transient", error="529"), attempt=attempt),
        )
    [failed] = decided(machine)
    assert type(failed.body).__name__ == "TaskFailed"
    assert failed.body.failed_step == "r"


def test_a_permanent_failure_ends_the_task_at_once() -> None:
    machine = TaskMachine("t1")
    fold(machine, submitted(plan=STEPS[:1]))
    feed(machine, decided(machine))
    feed(machine, decided(machine))
    fold(machine, env(StepFailed(step_id="r", error_class="permanent", error="400")))
    [failed] = decided(machine)
    assert failed.body.error_class == "permanent"


def test_output_invalid_after_repair_is_resampled_by_a_new_attempt() -> None:
    machine = TaskMachine("t1")
    fold(machine, submitted(plan=STEPS[:1]))
    feed(machine, decided(machine))
    feed(machine, decided(machine))
    invalid = StepFailed(
        step_id="r", error_class="permanent", error="still invalid", reason="invalid_output"
    )
    fold(machine, env(invalid))
    [again] = decided(machine)
    assert type(again.body).__name__ == "StepRequested"
    assert again.attempt == 1
    feed(machine, [again])
    fold(machine, env(StepCompleted(step_id="r", output="valid this time")))
    [vote] = decided(machine)
    assert type(vote.body).__name__ == "VoteRequested"


def test_a_refusal_is_not_resampled() -> None:
    machine = TaskMachine("t1")
    fold(machine, submitted(plan=STEPS[:1]))
    feed(machine, decided(machine))
    feed(machine, decided(machine))
    fold(machine, env(StepFailed(step_id="r", error_class="permanent", reason="refusal")))
    [failed] = decided(machine)
    assert type(failed.body).__name__ == "TaskFailed"


def decision(proposal: str, outcome: str, **kw: Any) -> Envelope[Any]:
    tally = {outcome: 2.0}
    return env(
        Decision(
            decision_id=f"{proposal}/d",
            proposal_id=proposal,
            ballot=1,
            outcome=outcome,
            tally=tally,
            quorum=2,
            **kw,
        )
    )


def answered_once(config: TaskConfig | None = None) -> TaskMachine:
    machine = TaskMachine("t1", config or TaskConfig())
    fold(machine, submitted(plan=STEPS[:1]))
    feed(machine, decided(machine))
    feed(machine, decided(machine))
    fold(machine, env(StepCompleted(step_id="r", output="first try")))
    feed(machine, decided(machine))
    return machine


def test_a_rejected_answer_fails_the_task_with_the_tally_when_no_round_is_left() -> None:
    machine = answered_once(TaskConfig(max_answer_rounds=1))
    fold(machine, decision("t1/answer", "rejected"))
    [failed] = decided(machine)
    assert "did not accept" in failed.body.reason


def test_a_rejected_answer_is_revised_and_put_to_a_second_vote() -> None:
    machine = answered_once()
    fold(machine, decision("t1/answer", "rejected"))
    [revision] = decided(machine)
    assert revision.body.step_id == "r"
    assert revision.body.prompt_variant == "revise-2"
    assert revision.attempt == 1
    assert "did not accept" in revision.body.instructions
    feed(machine, [revision])
    # The rejected output no longer counts, and a late copy of it is not taken back.
    assert decided(machine) == []
    fold(machine, env(StepCompleted(step_id="r", output="first try"), attempt=0))
    assert decided(machine) == []
    fold(machine, env(StepCompleted(step_id="r", output="revised"), attempt=1))
    [vote] = decided(machine)
    assert vote.body.proposal_id == "t1/answer-2"
    assert vote.body.candidates[0].content == "revised"
    feed(machine, [vote])
    # A late decision of round 1 changes nothing; round 2's decides.
    fold(machine, decision("t1/answer", "rejected"))
    assert decided(machine) == []
    fold(machine, decision("t1/answer-2", ANSWER))
    [done] = decided(machine)
    assert type(done.body).__name__ == "TaskCompleted"
    assert done.body.result == "revised"


def test_a_failed_revision_is_retried_like_any_attempt() -> None:
    machine = answered_once()
    fold(machine, decision("t1/answer", "rejected"))
    [revision] = decided(machine)
    feed(machine, [revision])
    fold(machine, env(StepFailed(step_id="r", error_class="transient"), attempt=1))
    [retry] = decided(machine)
    assert retry.attempt == 2


def test_no_quorum_puts_the_same_answer_to_the_vote_again() -> None:
    machine = answered_once()
    fold(machine, decision("t1/answer", "no_quorum"))
    [vote] = decided(machine)
    assert vote.body.proposal_id == "t1/answer-2"
    assert vote.body.candidates[0].content == "first try"
    feed(machine, [vote])
    fold(machine, decision("t1/answer-2", "no_quorum"))
    [failed] = decided(machine)
    assert type(failed.body).__name__ == "TaskFailed"


def test_an_invalid_plan_fails_the_task_naming_the_problem() -> None:
    machine = TaskMachine("t1")
    bad = [PlanStep(step_id="x", depends_on=["y"]), PlanStep(step_id="y", depends_on=["x"])]
    fold(machine, submitted(plan=bad))
    feed(machine, decided(machine))
    [failed] = decided(machine)
    assert "cycle" in failed.body.reason


def test_folding_is_idempotent_and_ids_are_derived() -> None:
    a, b = TaskMachine("t1"), TaskMachine("t1")
    first = submitted(plan=STEPS)
    assert fold(a, first)
    assert not fold(a, first)
    fold(b, first)
    # Two planners (or one before and after a crash) derive the same actions.
    assert decided(a) == decided(b)


def test_a_task_past_its_own_deadline_fails_saying_what_it_waited_for() -> None:
    machine = TaskMachine("t1")
    task = submitted(plan=STEPS[:1], deadline_s=30)
    fold(machine, task)
    feed(machine, decided(machine))
    feed(machine, decided(machine))  # r requested; no worker ever answers
    assert overdue(machine, task.created_at + timedelta(seconds=29)) is None
    late = overdue(machine, task.created_at + timedelta(seconds=30))
    assert isinstance(late, Publish)
    assert late.body.error_class == "budget"
    assert "waiting for steps r" in late.body.reason
    feed(machine, [late])
    assert overdue(machine, task.created_at + timedelta(seconds=99)) is None  # ended once
    assert decided(machine) == []
