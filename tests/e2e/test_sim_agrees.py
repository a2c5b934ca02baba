"""Simulated and real agree: one project, fault-free, the same schedule and decisions.

The real services run as processes on the test session's broker with the sim
model backend; `synod.sim` runs the same submission with no fault. The order in
which the planner dispatched the steps (first StepRequested of each attempt,
in log order) and the decisions must be the same: the simulator drives the
same task core, consensus fold and worker records the services do. The plan's
shape fixes the schedule whatever the model latencies (independent steps are
dispatched together, in the order the task core ranks them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.localteam import (
    CODEC,
    assert_log_checks,
    local_team,
    outcomes_by_task,
    read_topic,
    send_raw,
)

from synod.sim import SimConfig, World
from synod.sim.sweep import schedule
from synod.transport.topics import RESULTS, TASK_EVENTS
from synod.wire import Envelope, PlanStep, Sender, TaskSubmitted

PROJECT = [
    PlanStep(step_id="a", role="coder", title="base", files=["a.py"]),
    PlanStep(step_id="e", role="researcher", title="notes"),
    PlanStep(step_id="b", role="coder", title="left", depends_on=["a"], files=["b.py"]),
    PlanStep(step_id="c", role="coder", title="right", depends_on=["a"], files=["c.py"]),
    PlanStep(step_id="d", role="coder", title="join", depends_on=["b", "c"], files=["d.py"]),
]


def _submission(task_id: str) -> Envelope[TaskSubmitted]:
    body = TaskSubmitted(goal="a diamond of coding steps", plan=PROJECT, reviewers=3)
    return Envelope.new(
        body, sender=Sender(role="client", instance="test"), task_id=task_id, message_id=task_id
    )


async def test_a_fault_free_project_runs_the_same_in_the_simulator_and_for_real(
    kafka: Any, tmp_path: Path
) -> None:
    task_id = "agree-1"
    sent = _submission(task_id)
    replicas = {"consensus": 1, "planner": 1, "coder": 2, "researcher": 1, "reviewer": 3}
    async with local_team(kafka.bootstrap, tmp_path, "agree", replicas) as run:
        await send_raw(run, [(task_id, CODEC.encode(sent, "json"))])
        await read_topic(run, RESULTS, lambda rs: bool(outcomes_by_task(rs).get(task_id)), 180)
        events = await read_topic(run, TASK_EVENTS, lambda rs: True, drain_s=2.0)
        await assert_log_checks(run)
    real = [CODEC.decode(r.value) for r in sorted(events, key=lambda r: r.offset)]
    real = [e for e in real if e.task_id == task_id]

    world = World(SimConfig(seed=1, given=(sent,)))
    simulated = world.run()
    assert simulated.ok, simulated.to_json()
    sim_log = [
        r.envelope
        for r in world.records()
        if r.topic == TASK_EVENTS.name and r.envelope.task_id == task_id
    ]
    real_steps, real_decisions = schedule(real)
    sim_steps, sim_decisions = schedule(sim_log)
    print(f"\nreal: {real_steps} {real_decisions}\nsim:  {sim_steps} {sim_decisions}")
    assert real_steps == sim_steps
    assert real_decisions == sim_decisions
    assert len(real_steps) == len(PROJECT)
