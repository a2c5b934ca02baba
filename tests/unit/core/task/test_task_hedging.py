"""Hedging in the TaskMachine: a straggler past the p95 of finished steps runs again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from synod.core.task.machine import Publish, TaskMachine
from synod.wire import PlanProposed, PlanStep, StepCompleted
from synod.wire.messages import utc_now

from .test_task_machine import env, feed, submitted

STEPS = [PlanStep(step_id=f"s{i}", files=[f"s{i}.py"]) for i in range(7)]


def _started(plan: list[PlanStep] | None = STEPS) -> tuple[TaskMachine, list[Any]]:
    machine = TaskMachine("t1")
    machine.apply(submitted(plan=plan))
    feed(machine, machine.next_actions())  # the plan
    steps = machine.next_actions()
    feed(machine, steps)
    return machine, steps


def _finish(machine: TaskMachine, ids: list[str], took: float = 1.0) -> None:
    for sid in ids:
        machine.apply(env(StepCompleted(step_id=sid, duration_s=took)))


def test_a_straggler_is_requested_again_once_and_the_first_result_wins() -> None:
    machine, steps = _started()
    assert all(a.body.files == [a.body.step_id + ".py"] for a in steps)
    _finish(machine, ["s0", "s1", "s2", "s3", "s4"])
    now = machine.requested_at["s5"]
    assert machine.hedges(now + timedelta(seconds=0.5)) == []  # within the p95

    hedges = machine.hedges(now + timedelta(seconds=5))
    assert sorted(h.body.step_id for h in hedges) == ["s5", "s6"]
    assert all(isinstance(h, Publish) and h.attempt == 1 for h in hedges)
    assert all(h.body.prompt_variant == "hedge" for h in hedges)
    feed(machine, hedges)
    assert machine.hedges(now + timedelta(seconds=50)) == []  # once per step
    assert machine.next_actions() == []  # the original attempts are still out

    first = env(StepCompleted(step_id="s5", output="hedge won"), attempt=1)
    late = env(StepCompleted(step_id="s5", output="original"), attempt=0)
    machine.apply(first)
    machine.apply(late)
    assert machine.completed["s5"].output == "hedge won"


def test_too_few_finished_steps_or_no_given_plan_means_no_hedge() -> None:
    machine, _ = _started()
    _finish(machine, ["s0", "s1", "s2", "s3"])
    later = utc_now() + timedelta(hours=1)
    assert machine.hedges(later) == []

    planned = TaskMachine("t1")
    planned.apply(submitted())  # the model plans: not a team run
    planned.apply(env(PlanProposed(plan_id="p1", steps=STEPS)))
    feed(planned, planned.next_actions())
    _finish(planned, ["s0", "s1", "s2", "s3", "s4"])
    assert planned.hedges(later) == []


def test_a_team_of_n_agents_has_at_most_n_attempts_out_hedges_included() -> None:
    machine = TaskMachine("t1")
    machine.apply(submitted(plan=STEPS, labels={"team.agents": "2"}))
    feed(machine, machine.next_actions())
    first = machine.next_actions()
    assert len(first) == 2
    feed(machine, first)
    assert machine.next_actions() == []  # both agents busy
    straggler, other = first[0].body.step_id, first[1].body.step_id
    _finish(machine, [other])
    late = utc_now() + timedelta(hours=1)
    for _ in range(5):  # the other agent works through the rest, one at a time
        [nxt] = machine.next_actions()
        feed(machine, [nxt])
        assert machine.hedges(late) == []  # no agent free for a hedge
        _finish(machine, [nxt.body.step_id])
    assert machine.next_actions() == []  # only the straggler is left, and it is out
    [hedge] = machine.hedges(late)
    assert hedge.body.step_id == straggler
