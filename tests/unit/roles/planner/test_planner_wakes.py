"""The planner's sweep steps only the tasks whose wake has come (synod.core.task.wakes).

Time alone still moves a task with no record coming in: its deadline fails it and a
straggler is hedged, while the tasks that need no time are not stepped at all. Tasks
of a partition being rebuilt or not held wait aside, and a change of the quarantine
steps every held task once. The planner runs over the in-memory transport; the
clock the planner reads is set by the test.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from synod.core.task import TaskConfig
from synod.core.task.wakes import SOON
from synod.dev.memoryplanner import MemoryPlanner
from synod.roles.planner import service
from synod.transport.topics import RESULTS, STEPS_CODER, TASK_EVENTS, TopicSpec, topic_name
from synod.wire import (
    Envelope,
    PlanStep,
    Sender,
    StepCompleted,
    StepRequested,
    TaskFailed,
    TaskSubmitted,
)
from synod.wire.messages import QuarantineNotice, utc_now

PREFIX = "t."
PARTITIONS = 4
CLIENT = Sender(role="client", instance="c")
CODER = Sender(role="coder", instance="coder-0")
EVENTS = topic_name(TASK_EVENTS, PREFIX)


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(service, "utc_now", c)
    return c


class Team(MemoryPlanner):
    """A planner on the in-memory broker (synod.dev.memoryplanner), with a 30 s step
    deadline, every partition of the task log its own."""

    def __init__(self) -> None:
        super().__init__(
            partitions=PARTITIONS, config=TaskConfig(step_deadline_s=30.0), prefix=PREFIX
        )

    async def log(self, envelope: Envelope[Any]) -> None:
        """A record on the task log, as a client or a worker writes it; handled."""
        await self.publish(TASK_EVENTS, envelope)
        await self.consumer.wait_idle()

    async def sweep(self) -> int:
        stepped = await self.planner.sweep_once()
        await self.consumer.wait_idle()  # what it logged is handled
        return stepped

    def bodies(self, spec: TopicSpec, task_id: str) -> list[Any]:
        out = []
        for r in self.broker.records(topic_name(spec, PREFIX)):
            envelope = self.broker.codec.decode(r.value)
            if envelope.task_id == task_id:
                out.append(envelope.body)
        return out

    def partition_of(self, task_id: str) -> int:
        return self.planner.partition_of[task_id]


def submitted(task_id: str, steps: int, deadline_s: float, at: datetime) -> Envelope[Any]:
    plan = [PlanStep(step_id=f"s{i}") for i in range(steps)]
    body = TaskSubmitted(goal="g", plan=plan, deadline_s=deadline_s)
    return Envelope.new(body, sender=CLIENT, task_id=task_id, created_at=at)


async def test_a_deadline_passes_with_no_record_coming_in_and_the_task_fails(
    clock: Clock,
) -> None:
    team = Team()
    await team.start()
    start = clock.now
    await team.log(submitted("late", steps=1, deadline_s=60, at=clock.now))
    for i in range(20):  # tasks with all the time in the world
        await team.log(submitted(f"idle{i}", steps=1, deadline_s=3_600, at=clock.now))
    [request] = [b for b in team.bodies(STEPS_CODER, "late") if isinstance(b, StepRequested)]
    assert request.step_id == "s0"  # out to a coder that will never answer
    await team.sweep()  # the first sweep steps every task once (a new quarantine view)
    assert team.planner.wakes.when("late") == start + timedelta(seconds=60)

    clock.now = start + timedelta(seconds=30)
    assert await team.sweep() == 0  # nothing due: nothing stepped
    assert team.bodies(RESULTS, "late") == []

    clock.now = start + timedelta(seconds=61)
    assert await team.sweep() == 1  # the late task only, of 21
    [failed] = team.bodies(RESULTS, "late")
    assert isinstance(failed, TaskFailed)
    assert failed.error_class == "budget"
    assert "deadline of 60 s passed while waiting for steps s0" in failed.reason
    assert "late" not in team.planner.wakes  # over: it needs no more time
    assert "idle0" in team.planner.wakes
    assert team.bodies(RESULTS, "idle0") == []
    await team.consumer.stop()


async def test_a_straggler_is_hedged_with_no_record_coming_in(clock: Clock) -> None:
    team = Team()
    await team.start()
    start = clock.now
    await team.log(submitted("h", steps=6, deadline_s=600, at=clock.now))
    for i in range(5):  # five steps done in 1 s each; s5 is still out
        done = StepCompleted(step_id=f"s{i}", output="ok", duration_s=1.0)
        await team.log(Envelope.new(done, sender=CODER, task_id="h"))
    requested_at = team.planner.tasks["h"].requested_at["s5"]
    await team.sweep()
    assert team.planner.wakes.when("h") == requested_at + timedelta(seconds=1.0)  # the p95

    clock.now = requested_at + timedelta(seconds=0.5)
    assert await team.sweep() == 0

    clock.now = start + timedelta(seconds=5)
    assert await team.sweep() == 1
    hedges = [
        b
        for b in team.bodies(STEPS_CODER, "h")
        if isinstance(b, StepRequested) and b.prompt_variant == "hedge"
    ]
    assert [h.step_id for h in hedges] == ["s5"]
    # Hedged once: the deadline is its next wake.
    assert team.planner.wakes.when("h") == team.planner.tasks["h"]._deadline()
    await team.consumer.stop()


async def test_tasks_of_a_partition_rebuilt_or_not_held_wait_then_are_stepped(
    clock: Clock,
) -> None:
    team = Team()
    await team.start()
    start = clock.now
    await team.log(submitted("late", steps=1, deadline_s=60, at=clock.now))
    await team.sweep()
    planner = team.planner
    partition = team.partition_of("late")
    clock.now = start + timedelta(seconds=61)

    planner.rebuilding.add(partition)
    assert await team.sweep() == 0  # partial until its rebuild ends
    assert planner.wakes.held() == 1
    assert "late" in planner.wakes
    assert await team.sweep() == 0
    planner.rebuilding.discard(partition)
    assert await team.sweep() == 1
    assert isinstance(team.bodies(RESULTS, "late")[0], TaskFailed)

    await team.log(submitted("gone", steps=1, deadline_s=60, at=clock.now))
    await team.sweep()
    clock.now += timedelta(seconds=61)
    held = planner.consumer.assigned  # type: ignore[union-attr]
    others = {tp for tp in held if tp.partition != team.partition_of("gone")}
    planner.consumer.assigned = others  # type: ignore[union-attr]
    assert await team.sweep() == 0  # not ours now: another planner runs it
    assert team.bodies(RESULTS, "gone") == []
    planner.consumer.assigned = held  # type: ignore[union-attr]
    assert await team.sweep() == 1
    assert isinstance(team.bodies(RESULTS, "gone")[0], TaskFailed)
    await team.consumer.stop()


async def test_a_change_of_the_quarantine_steps_every_held_task_once(clock: Clock) -> None:
    team = Team()
    await team.start()
    for i in range(10):
        await team.log(submitted(f"t{i}", steps=1, deadline_s=3_600, at=clock.now))
    assert await team.sweep() == 10  # the first sweep: a quarantine view it never had
    assert await team.sweep() == 0
    notice = QuarantineNotice(instance="reviewer-1", role="reviewer")
    team.planner.quarantine.notices["reviewer-1"] = notice
    assert await team.sweep() == 10  # the electorate changed for every task
    assert all(m.quarantined == {"reviewer-1"} for m in team.planner.tasks.values())
    assert await team.sweep() == 0
    await team.consumer.stop()


async def test_a_task_left_memory_drops_out_of_the_schedule(clock: Clock) -> None:
    team = Team()
    await team.start()
    start = clock.now
    await team.log(submitted("t", steps=1, deadline_s=60, at=clock.now))
    await team.sweep()
    planner = team.planner
    planner.tasks.pop("t")  # as a snapshot prunes it
    planner.locks.pop("t")
    clock.now = start + timedelta(seconds=61)
    assert await team.sweep() == 0
    assert "t" not in planner.wakes
    await team.consumer.stop()


async def test_every_task_a_rebuild_folded_is_due_right_after_it(clock: Clock) -> None:
    # A rebuild folds records (snapshot and tail) without running the machines: a
    # deadline that passed while no planner held the partition has no record to
    # come, so the sweep after the rebuild must step the task.
    team = Team()
    await team.start()
    start = clock.now
    await team.log(submitted("back", steps=1, deadline_s=60, at=clock.now))
    await team.log(submitted("other", steps=1, deadline_s=60, at=clock.now))
    await team.sweep()
    planner = team.planner
    partition = team.partition_of("back")

    async def fold_nothing_new(own: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert planner.rebuilding == {partition}
        return {}

    planner._fold_partitions = fold_nothing_new  # type: ignore[method-assign]
    await planner.rebuild([TopicPartition(EVENTS, partition)])
    assert planner.wakes.when("back") == SOON
    if team.partition_of("other") != partition:
        assert planner.wakes.when("other") == start + timedelta(seconds=60)  # not rebuilt
    clock.now = start + timedelta(seconds=61)
    assert await team.sweep() >= 1
    assert isinstance(team.bodies(RESULTS, "back")[0], TaskFailed)
    await team.consumer.stop()
