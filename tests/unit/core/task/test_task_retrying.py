"""TaskMachine and StepRetrying: an attempt parked in a retry topic is not lost."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.taskcore import decided, fold

from synod.core.task import Publish, TaskConfig, TaskMachine
from synod.wire import Body, Envelope, PlanStep, Sender, StepCompleted, StepRequested, TaskSubmitted
from synod.wire.messages import StepReassigned, StepRetrying

PLANNER = Sender(role="planner", instance="planner-0")
WORKER = Sender(role="coder", instance="coder-0")
SUPERVISOR = Sender(role="supervisor", instance="supervisor-0")


def env(body: Body, sender: Sender = PLANNER, **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=sender, task_id="t1", **kw)


def run(machine: TaskMachine) -> list[Publish]:
    actions = [a for a in decided(machine) if isinstance(a, Publish)]
    for a in actions:
        fold(machine, env(a.body, message_id=a.message_id, attempt=a.attempt))
    return actions


def started() -> tuple[TaskMachine, datetime]:
    machine = TaskMachine("t1", TaskConfig(step_deadline_s=10))
    plan = [PlanStep(step_id="c", role="coder", title="code")]
    fold(machine, env(TaskSubmitted(goal="g", reviewers=3, plan=plan)))
    run(machine)
    [request] = run(machine)
    assert isinstance(request.body, StepRequested)
    return machine, machine.requested_at["c"]


def retrying(due: datetime, attempt: int = 0, retry: int = 1) -> Envelope[Any]:
    body = StepRetrying(step_id="c", retry=retry, due_at=due, reason="overloaded", deadline_s=10)
    return env(body, sender=WORKER, attempt=attempt)


def stuck(at: datetime, after: int = 0) -> Envelope[Any]:
    body = StepReassigned(step_id="c", after_attempt=after, reason="stuck")
    return env(body, sender=SUPERVISOR).model_copy(update={"created_at": at})


def test_a_parked_attempt_is_still_out_and_its_clock_restarts_at_the_due_time() -> None:
    machine, t0 = started()
    due = t0 + timedelta(seconds=30)
    fold(machine, retrying(due))
    assert decided(machine) == []  # no new attempt: the parked one will run
    assert machine.requested_at["c"] == due  # hedging measures from the rerun


def test_a_stuck_order_while_the_attempt_waits_in_a_retry_topic_is_ignored() -> None:
    machine, t0 = started()
    due = t0 + timedelta(seconds=30)
    fold(machine, retrying(due))
    fold(machine, stuck(t0 + timedelta(seconds=21)))  # past the first deadline, before rerun
    assert decided(machine) == []  # no duplicate attempt
    fold(machine, env(StepCompleted(step_id="c", output="x"), sender=WORKER))
    assert "c" in machine.completed


def test_a_stuck_order_after_the_rerun_could_have_ended_starts_a_new_attempt() -> None:
    machine, t0 = started()
    due = t0 + timedelta(seconds=30)
    fold(machine, retrying(due))
    fold(machine, stuck(due + timedelta(seconds=10.5)))  # rerun's deadline (10 s) passed
    [again] = run(machine)
    assert again.attempt == 1


def test_a_retry_of_an_older_attempt_changes_nothing() -> None:
    machine, t0 = started()
    fold(machine, stuck(t0 + timedelta(seconds=21)))  # not parked: a new attempt
    [again] = run(machine)
    assert again.attempt == 1
    newest_at = machine.requested_at["c"]
    fold(machine, retrying(t0 + timedelta(seconds=60), attempt=0))
    assert machine.requested_at["c"] == newest_at
    assert "c" not in machine.parked
