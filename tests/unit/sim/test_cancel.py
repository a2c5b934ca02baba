"""Losing hedges stopped in the simulation, as the worker service stops them.

The planner hedges a straggler once five of the task's steps have finished
(`TaskConfig.hedge_min_samples`), so the drawn tasks (1-4 steps) never hedge;
this project of ten coding steps with slow models does. When the first
attempt of a hedged step completes, the planner logs a `StepCancelled` naming
the others and sends it on to synod.steps.cancel (with its write under `ack`,
on reading it back under `read-back`); every worker reads every cancel and
stops the named attempt running there, or skips it when it comes later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from synod.sim import FaultPlan, SimConfig, World
from synod.transport.topics import STEPS_CANCEL, TASK_EVENTS
from synod.wire import Envelope, PlanStep, Sender, StepCompleted, StepFailed, TaskSubmitted
from synod.wire.messages import StepCancelled

STEPS = [
    PlanStep(step_id=f"s{k}", role="coder", title=f"s{k}", files=[f"s{k}.py"]) for k in range(6)
]
STEPS += [
    PlanStep(step_id=f"t{k}", role="coder", title=f"t{k}", depends_on=[f"s{k}"], files=[f"t{k}.py"])
    for k in range(4)
]
# Of seeds 0-11 every one stops some attempt; this one stops five under `ack` and two
# under `read-back` while they run (and two more there before they start).
SEED = 6


def _task() -> Envelope[TaskSubmitted]:
    body = TaskSubmitted(goal="ten coding steps", plan=STEPS, reviewers=3, deadline_s=3_000.0)
    return Envelope.new(
        body,
        sender=Sender(role="client", instance="test"),
        task_id="hedge-0",
        message_id="hedge-0",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _run(outbox: str) -> tuple[World, Any]:
    config = SimConfig(
        seed=SEED,
        given=(_task(),),
        plan=FaultPlan(faults=frozenset({"llm-slow"})),
        coders=3,
        outbox=outbox,  # type: ignore[arg-type]
    )
    world = World(config)
    return world, world.run()


@pytest.mark.parametrize("outbox", ["ack", "read-back"])
def test_a_losing_hedge_is_stopped_and_publishes_nothing(outbox: str) -> None:
    world, result = _run(outbox)
    assert result.ok, result.to_json()
    assert result.completed == 1
    records = world.records()
    cancelled = {
        rid
        for r in records
        if r.topic == STEPS_CANCEL.name and isinstance(r.envelope.body, StepCancelled)
        for rid in r.envelope.body.request_ids
    }
    running = [rid for _, _, rid, while_running in result.stopped if while_running]
    assert running, "the seed stopped no attempt while it ran"
    assert {rid for _, _, rid, _ in result.stopped} <= cancelled
    outcomes = [
        r.envelope
        for r in records
        if r.topic == TASK_EVENTS.name and isinstance(r.envelope.body, StepCompleted | StepFailed)
    ]
    for rid in running:  # stopped mid-call: no outcome of that attempt anywhere
        assert not any(rid in e.causes for e in outcomes), rid
    doc = result.to_json()
    assert [c["request_id"] for c in doc["cancelled"]] == [rid for _, _, rid, _ in result.stopped]


def test_a_run_with_cancels_replays_byte_for_byte() -> None:
    _, first = _run("ack")
    _, again = _run("ack")
    assert first.digest == again.digest
    assert first.stopped == again.stopped
