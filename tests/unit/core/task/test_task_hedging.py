"""Hedging in the TaskMachine: a straggler past the p95 of finished steps runs again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests import taskcore
from tests.taskcore import decided, fold

from synod.core.task import Publish, TaskMachine
from synod.wire import PlanProposed, PlanStep, StepCompleted
from synod.wire.messages import utc_now

from .test_task_machine import env, feed, submitted

STEPS = [PlanStep(step_id=f"s{i}", files=[f"s{i}.py"]) for i in range(7)]


def _started(plan: list[PlanStep] | None = STEPS) -> tuple[TaskMachine, list[Any]]:
    machine = TaskMachine("t1")
    fold(machine, submitted(plan=plan))
    feed(machine, decided(machine))  # the plan
    steps = decided(machine)
    feed(machine, steps)
    return machine, steps


def _finish(machine: TaskMachine, ids: list[str], took: float = 1.0) -> None:
    for sid in ids:
        fold(machine, env(StepCompleted(step_id=sid, duration_s=took)))


def test_a_straggler_is_requested_again_once_and_the_first_result_wins() -> None:
    machine, steps = _started()
    assert all(a.body.files == [a.body.step_id + ".py"] for a in steps)
    _finish(machine, ["s0", "s1", "s2", "s3", "s4"])
    now = machine.requested_at["s5"]
    assert taskcore.hedges(machine, now + timedelta(seconds=0.5)) == []  # within the p95

    hedges = taskcore.hedges(machine, now + timedelta(seconds=5))
    assert sorted(h.body.step_id for h in hedges) == ["s5", "s6"]
    assert all(isinstance(h, Publish) and h.attempt == 1 for h in hedges)
    assert all(h.body.prompt_variant == "hedge" for h in hedges)
    feed(machine, hedges)
    assert taskcore.hedges(machine, now + timedelta(seconds=50)) == []  # once per step
    assert decided(machine) == []  # the original attempts are still out

    first = env(StepCompleted(step_id="s5", output="hedge won"), attempt=1)
    late = env(StepCompleted(step_id="s5", output="original"), attempt=0)
    fold(machine, first)
    fold(machine, late)
    assert machine.completed["s5"].output == "hedge won"


def test_too_few_finished_steps_or_no_given_plan_means_no_hedge() -> None:
    machine, _ = _started()
    _finish(machine, ["s0", "s1", "s2", "s3"])
    later = utc_now() + timedelta(minutes=5)
    assert taskcore.hedges(machine, later) == []

    planned = TaskMachine("t1")
    fold(planned, submitted())  # the model plans: not a team run
    fold(planned, env(PlanProposed(plan_id="p1", steps=STEPS)))
    feed(planned, decided(planned))
    _finish(planned, ["s0", "s1", "s2", "s3", "s4"])
    assert taskcore.hedges(planned, later) == []


def test_a_team_of_n_agents_has_at_most_n_attempts_out_hedges_included() -> None:
    machine = TaskMachine("t1")
    fold(machine, submitted(plan=STEPS, labels={"team.agents": "2"}))
    feed(machine, decided(machine))
    first = decided(machine)
    assert len(first) == 2
    feed(machine, first)
    assert decided(machine) == []  # both agents busy
    straggler, other = first[0].body.step_id, first[1].body.step_id
    _finish(machine, [other])
    late = utc_now() + timedelta(minutes=5)
    for _ in range(5):  # the other agent works through the rest, one at a time
        [nxt] = decided(machine)
        feed(machine, [nxt])
        assert taskcore.hedges(machine, late) == []  # no agent free for a hedge
        _finish(machine, [nxt.body.step_id])
    # Only the straggler is left, and it is out: nothing but a hedge is due.
    assert [a for a in decided(machine) if a.body.prompt_variant != "hedge"] == []
    [hedge] = taskcore.hedges(machine, late)
    assert hedge.body.step_id == straggler
