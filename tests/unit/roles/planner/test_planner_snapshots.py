"""What a planner snapshot holds: the records of unfinished tasks, in their log order;
finished tasks leave memory with it; a partition under rebuild is not snapshotted; a
restore folds the records back into the same machines."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition

from synod.core.snapshot import unpack_records
from synod.core.task import Logged, TaskConfig
from synod.roles.planner.service import Planner
from synod.roles.planner.snapshots import SNAPSHOT_MAGIC, PlannerSnapshots
from synod.transport.topics import TASK_EVENTS, topic_name
from synod.wire import (
    Codec,
    Envelope,
    PlanProposed,
    PlanStep,
    Reconciled,
    Sender,
    TaskCompleted,
    TaskSubmitted,
)

CLIENT = Sender(role="client", instance="c")
PLANNER = Sender(role="planner", instance="p")
CODEC = Codec()
EVENTS = topic_name(TASK_EVENTS, "t.")


class Store:
    def __init__(self) -> None:
        self.saved: list[tuple[str, int, int, bytes]] = []

    async def save(self, topic: str, partition: int, offset: int, payload: bytes) -> int:
        self.saved.append((topic, partition, offset, payload))
        return len(payload)


class Consumer:
    def __init__(self, handled: int | None) -> None:
        self.assigned = {TopicPartition(EVENTS, 0)}
        self.handled = handled

    def handled_below(self, topic: str, partition: int) -> int | None:
        return self.handled


def _planner(handled: int | None = None) -> tuple[Planner, PlannerSnapshots, Store]:
    kafka = SimpleNamespace(bootstrap="127.0.0.1:1", topic_prefix="t.")
    ctx: Any = SimpleNamespace(
        kafka=kafka,
        topic=lambda spec: topic_name(spec, "t."),
        instance="p-0",
        service=SimpleNamespace(causal_clocks=False),
    )
    planner = Planner(ctx, llm=None, config=TaskConfig())  # type: ignore[arg-type]
    planner.consumer = Consumer(handled)  # type: ignore[assignment]
    snapshots = PlannerSnapshots(planner)
    store = Store()
    snapshots.store = store  # type: ignore[assignment]
    planner.snapshots = snapshots
    return planner, snapshots, store


def _records(task: str, finished: bool) -> list[bytes]:
    bodies: list[tuple[Sender, Any]] = [
        (CLIENT, TaskSubmitted(goal="g")),
        (PLANNER, PlanProposed(plan_id="p1", steps=[PlanStep(step_id="s1")])),
    ]
    if finished:
        bodies.append((PLANNER, TaskCompleted(result="r")))
    return [
        CODEC.encode(Envelope.new(b, sender=s, task_id=task, message_id=f"{task}-{i}"))
        for i, (s, b) in enumerate(bodies)
    ]


def _fold(planner: Planner, log: list[tuple[str, bytes]]) -> None:
    """Fold (task, record) pairs as offsets 0.. of partition 0, as the consumer would."""
    assert planner.snapshots is not None
    for offset, (task, value) in enumerate(log):
        machine = planner.machine(task)
        planner.partition_of[task] = 0
        envelope = CODEC.decode(value)
        machine.step(Logged(envelope, replayed=True))
        planner.snapshots.keep(task, offset, value, envelope.message_id)


def test_a_snapshot_holds_unfinished_tasks_and_finished_ones_leave_memory() -> None:
    planner, snapshots, store = _planner(handled=6)
    running, done = _records("run", False), _records("done", True)
    log = [("run", running[0]), ("done", done[0]), ("done", done[1])]
    log += [("run", running[1]), ("done", done[2]), ("run", running[1])]  # a repeat at 5
    _fold(planner, log)
    snapshots.rebuilt(0, 0)
    assert asyncio.run(snapshots.write_due()) == 1
    [(topic, partition, offset, payload)] = store.saved
    assert (topic, partition, offset) == (EVENTS, 0, 6)
    assert payload.startswith(SNAPSHOT_MAGIC)
    assert unpack_records(payload, 4) == running  # in order, the repeat once
    assert set(planner.tasks) == {"run"}
    assert "done" not in planner.partition_of
    # Nothing new: nothing written.
    assert asyncio.run(snapshots.write_due()) == 0

    # A successor folds the records back: the same unfinished machine.
    successor, restored, _ = _planner()
    restored._fold(0, unpack_records(payload, 4))
    assert successor.tasks["run"].plan == planner.tasks["run"].plan
    assert successor.tasks["run"].submitted == planner.tasks["run"].submitted
    assert restored.records["run"] == running


def test_a_finished_task_with_a_record_above_the_offset_stays() -> None:
    planner, snapshots, store = _planner(handled=2)
    done = _records("done", True)
    _fold(planner, [("done", v) for v in done])  # its outcome at offset 2, not below 2
    snapshots.rebuilt(0, 0)
    asyncio.run(snapshots.write_due())
    assert unpack_records(store.saved[0][3], 4) == done
    assert "done" in planner.tasks


def test_a_partition_under_rebuild_is_not_snapshotted() -> None:
    planner, snapshots, store = _planner(handled=3)
    _fold(planner, [("run", v) for v in _records("run", False)])
    snapshots.rebuilding(0)
    assert asyncio.run(snapshots.write_due()) == 0
    assert store.saved == []


def test_a_record_folded_before_it_is_read_back_is_kept_when_it_is() -> None:
    # The planner folds its own usage reports when it publishes them; the copy read
    # back changes no fold but must be in the snapshot, or a restore loses it.
    planner, snapshots, store = _planner(handled=3)
    running = _records("run", False)
    early = CODEC.decode(running[1])
    _fold(planner, [("run", running[0])])
    planner.tasks["run"].step(Logged(early, replayed=True))
    _fold(planner, [("run", running[0]), ("run", running[1])])
    snapshots.rebuilt(0, 0)
    asyncio.run(snapshots.write_due())
    assert unpack_records(store.saved[0][3], 4) == running


def _provisional(task: str) -> list[bytes]:
    """A task whose answer rests on a provisional (`ap`) decision."""
    bodies: list[tuple[Sender, Any]] = [
        (CLIENT, TaskSubmitted(goal="g", partition_mode="ap")),
        (PLANNER, PlanProposed(plan_id="p1", steps=[PlanStep(step_id="s1")])),
        (PLANNER, TaskCompleted(result="r", decision_id="d1", provisional=True)),
    ]
    return [
        CODEC.encode(Envelope.new(b, sender=s, task_id=task, message_id=f"{task}-{i}"))
        for i, (s, b) in enumerate(bodies)
    ]


def test_a_provisional_outcome_stays_in_memory_until_it_is_reconciled() -> None:
    # After the heal, an overturning Reconciled reopens the task from its state; had
    # the task left memory at a snapshot, a fresh machine would do nothing with it.
    planner, snapshots, store = _planner(handled=3)
    provisional = _provisional("ap")
    _fold(planner, [("ap", v) for v in provisional])
    snapshots.rebuilt(0, 0)
    asyncio.run(snapshots.write_due())
    assert "ap" in planner.tasks
    assert unpack_records(store.saved[0][3], 4) == provisional

    verdict = Reconciled(
        decision_id="d1",
        proposal_id="ap/answer",
        ballot=1,
        provisional_outcome="answer",
        outcome="answer",
        confirmed=True,
    )
    value = CODEC.encode(Envelope.new(verdict, sender=PLANNER, task_id="ap", message_id="ap-r"))
    _fold(planner, [("ap", v) for v in provisional] + [("ap", value)])
    planner.consumer.handled = 4  # type: ignore[union-attr]
    asyncio.run(snapshots.write_due())
    assert "ap" not in planner.tasks  # confirmed: over for good


def test_a_deadline_sweep_over_many_tasks_lets_the_event_loop_run() -> None:
    """Heartbeats and fetches share the loop with the sweep: one sweep of thousands of
    tasks without a yield kept them out past the session timeout (bench/scale.py)."""
    planner, _, _ = _planner()
    tasks = 500
    for i in range(tasks):
        _fold(planner, [(f"t{i}", value) for value in _records(f"t{i}", finished=True)])
    ticks = 0
    seen: list[int] = []  # the probe's count at each machine the sweep runs
    real_run = planner.run

    swept = asyncio.Event()

    async def counted(machine: Any) -> None:
        seen.append(ticks)
        if len(seen) == tasks:
            swept.set()
        await real_run(machine)

    planner.run = counted  # type: ignore[method-assign]

    async def probe() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def one_sweep() -> None:
        loop_probe = asyncio.create_task(probe())
        sweep = asyncio.create_task(planner.sweep_deadlines(interval_s=0))
        await asyncio.wait_for(swept.wait(), 30)
        for task in (sweep, loop_probe):
            task.cancel()
        await asyncio.gather(sweep, loop_probe, return_exceptions=True)

    asyncio.run(one_sweep())
    first = seen[:tasks]
    assert first[-1] > first[0], "the loop did not run once during a sweep"
