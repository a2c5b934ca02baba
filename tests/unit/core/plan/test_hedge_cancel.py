"""A hedged step's loser is cancelled once the winner is in the log, and only once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests import taskcore
from tests.taskcore import cancels, decided, fold

from synod.core.task import Publish, TaskConfig, TaskMachine, forward_to
from synod.ids import derived_id
from synod.wire import Body, Envelope, PlanStep, Sender, StepCompleted, StepFailed, TaskSubmitted
from synod.wire.messages import StepCancelled

PLANNER = Sender(role="planner", instance="planner-0")
CODER = Sender(role="coder", instance="coder-1")
STEPS = [PlanStep(step_id=f"s{i}", files=[f"s{i}.py"]) for i in range(4)]


def env(body: Body, sender: Sender = PLANNER, **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=sender, task_id="t1", **kw)


def feed(machine: TaskMachine, actions: list[Any]) -> None:
    for action in actions:
        assert isinstance(action, Publish)
        fold(machine, env(action.body, message_id=action.message_id, attempt=action.attempt))


def hedged_s3() -> TaskMachine:
    """s0..s2 done quickly, s3 out past the p95 and hedged (attempt 1)."""
    machine = TaskMachine("t1", TaskConfig(hedge_min_samples=3))
    fold(machine, env(TaskSubmitted(goal="g", plan=STEPS, labels={"team.mode": "synod"})))
    feed(machine, decided(machine))  # the plan
    feed(machine, decided(machine))  # the four steps
    for sid in ("s0", "s1", "s2"):
        fold(machine, env(StepCompleted(step_id=sid, duration_s=1.0), CODER))
    [hedge] = taskcore.hedges(machine, machine.requested_at["s3"] + timedelta(seconds=30))
    assert hedge.body.step_id == "s3"
    feed(machine, [hedge])
    assert cancels(machine) == []  # no winner yet
    return machine


def test_the_hedge_wins_and_the_straggler_is_cancelled_once() -> None:
    machine = hedged_s3()
    fold(machine, env(StepCompleted(step_id="s3", output="hedge"), CODER, attempt=1))
    [cancel] = cancels(machine)
    body = cancel.body
    assert isinstance(body, StepCancelled)
    assert body.attempts == [0]
    assert body.request_ids == [derived_id("t1", "step/s3/0")]  # the straggler's request id
    assert body.reason == "hedge_lost"
    assert cancels(machine) == [cancel]  # until logged, the same action (same id)
    feed(machine, [cancel])
    assert cancels(machine) == []
    # Logged by the planner, it goes on to the topic every worker reads.
    assert forward_to(env(body)) == "steps.cancel"
    assert forward_to(env(body, CODER)) is None


def test_the_straggler_wins_and_the_hedge_is_cancelled() -> None:
    machine = hedged_s3()
    fold(machine, env(StepCompleted(step_id="s3", output="late"), CODER, attempt=0))
    [cancel] = cancels(machine)
    assert cancel.body.attempts == [1]
    assert cancel.body.request_ids == [derived_id("t1", "step/s3/1")]
    assert machine.completed["s3"].output == "late"


def test_a_loser_that_already_failed_needs_no_cancel() -> None:
    machine = hedged_s3()
    fold(machine, env(StepFailed(step_id="s3", error_class="transient"), CODER, attempt=0))
    fold(machine, env(StepCompleted(step_id="s3"), CODER, attempt=1))
    assert cancels(machine) == []


def test_steps_never_hedged_are_never_cancelled() -> None:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="g", plan=STEPS)))
    feed(machine, decided(machine))
    feed(machine, decided(machine))
    for sid in ("s0", "s1", "s2", "s3"):
        fold(machine, env(StepCompleted(step_id=sid), CODER))
    assert cancels(machine) == []
