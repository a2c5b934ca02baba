"""The supervisor's Reassign in the simulation: a step whose model loops (llm-loop) is
reassigned with other parameters by the supervisor core, through the supervisor
service's own intake, and its task completes; without the remedy it fails."""

from __future__ import annotations

from typing import Any

from synod.sim import FaultPlan, SimConfig, SimResult, World
from synod.transport.topics import TASK_EVENTS
from synod.wire import Envelope, StepCompleted, TaskCompleted, TaskFailed
from synod.wire.messages import StepReassigned

# The first seed of this configuration with a looping step (of seeds 0-11, 0, 1, 4 and
# 10 loop one step each; with the remedy off, each of them fails one task).
SEED = 0
PLAN = FaultPlan(faults=frozenset({"llm-loop"}))


def _run(reassign: bool) -> tuple[World, SimResult]:
    world = World(SimConfig(seed=SEED, tasks=3, plan=PLAN, reassign=reassign))
    return world, world.run()


def _task_log(world: World, task_id: str) -> list[Envelope[Any]]:
    return [
        r.envelope
        for r in world.records()
        if r.topic == TASK_EVENTS.name and r.envelope.task_id == task_id
    ]


def test_a_looping_step_is_reassigned_and_its_task_completes_and_fails_without() -> None:
    healed, result = _run(reassign=True)
    assert result.ok, result.to_json()
    [(_, task_id, step_id, reason)] = result.reassigned
    assert reason == "loop"
    assert result.to_json()["reassigned"][0]["step_id"] == step_id
    log = _task_log(healed, task_id)
    [order] = [e for e in log if isinstance(e.body, StepReassigned)]
    assert order.sender.role == "supervisor"
    assert order.body.step_id == step_id
    outputs = [
        e.body.output
        for e in log
        if isinstance(e.body, StepCompleted) and e.body.step_id == step_id
    ]
    # The loop: the same output twice (what the supervisor judged), then a new one.
    assert outputs[0] == outputs[1]
    assert "WRONG" in outputs[0]
    assert "WRONG" not in outputs[-1]
    assert any(isinstance(e.body, TaskCompleted) for e in log)
    assert result.completed == 3

    left, plain = _run(reassign=False)
    assert plain.ok, plain.to_json()  # still terminal and consistent, only worse
    assert plain.reassigned == []
    assert any(isinstance(e.body, TaskFailed) for e in _task_log(left, task_id))
    assert plain.failed == 1


def test_a_seed_with_the_supervisor_acting_replays_byte_for_byte() -> None:
    _, first = _run(reassign=True)
    _, again = _run(reassign=True)
    assert first.digest == again.digest
    assert first.reassigned == again.reassigned
