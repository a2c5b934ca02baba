"""A hedge copy's key lands on a partition another live worker owns (lanes.py, docs/cap.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests import taskcore
from tests.taskcore import decided, fold

from synod.core.task import Forward, Logged, Owners, TaskMachine, forwards_of, key_of
from synod.core.task.lanes import Owner, OwnerBook, OwnerMap, hedge_lane
from synod.wire import Envelope, Heartbeat, PlanStep, Sender, StepCompleted
from synod.wire.partitioner import partition_for

from .test_task_machine import env, feed, logged, submitted

PARTITIONS = 12
STEPS = [PlanStep(step_id=f"s{i}", files=[f"s{i}.py"]) for i in range(7)]


def _where(key: str) -> int:
    return partition_for(key.encode(), PARTITIONS)


def _split(slow: str, fast: str, slow_parts: set[int], at: Any) -> OwnerMap:
    owners = {p: Owner(slow if p in slow_parts else fast, at) for p in range(PARTITIONS)}
    return OwnerMap(PARTITIONS, owners)


def _straggling() -> tuple[TaskMachine, str]:
    """A task whose s5 and s6 are out past the p95 of five finished steps."""
    machine = TaskMachine("t1")
    fold(machine, submitted(plan=STEPS))
    feed(machine, decided(machine))
    feed(machine, decided(machine))
    for sid in ["s0", "s1", "s2", "s3", "s4"]:
        fold(machine, env(StepCompleted(step_id=sid, duration_s=1.0)))
    return machine, "s5"


def _hedge_of(machine: TaskMachine, step_id: str, owners: OwnerMap | None) -> Any:
    now = machine.requested_at[step_id] + timedelta(seconds=5)
    if owners is not None:
        machine.step(Owners({"coder": owners}))
    [copy] = [h for h in taskcore.hedges(machine, now) if h.body.step_id == step_id]
    return copy


def test_the_copy_of_a_step_on_the_slow_coders_partition_goes_to_the_other_coder() -> None:
    machine, step = _straggling()
    straggler = _where(machine.keys[(step, 0)])
    # The slow coder owns the straggler's partition and every partition today's
    # hedge key would hash to: by chance the copy would land on the slow coder.
    today = _where(f"t1/{step}/1")
    now = machine.requested_at[step] + timedelta(seconds=5)
    owners = _split("coder-1", "coder-0", {straggler, today}, now)
    copy = _hedge_of(machine, step, owners)
    lane = copy.body.lane
    assert lane
    assert lane.startswith(f"{step}/1")
    assert owners.owners[_where(f"t1/{lane}")].instance == "coder-0"

    # The lane is in the logged request: its forward (and every repeat of it) uses it.
    record = logged(copy)
    assert key_of(record) == f"t1/{lane}"
    [forward] = [a for a in forwards_of(record) if isinstance(a, Forward)]
    assert forward.key == f"t1/{lane}"
    # The same owner map gives the same lane: no randomness in the choice.
    again, _ = _straggling()
    assert _hedge_of(again, step, owners).body.lane == lane


def test_without_another_live_coder_the_copy_keeps_todays_key() -> None:
    machine, step = _straggling()
    assert _hedge_of(machine, step, None).body.lane == ""  # no map yet

    machine, step = _straggling()
    now = machine.requested_at[step] + timedelta(seconds=5)
    alone = OwnerMap(PARTITIONS, {p: Owner("coder-1", now) for p in range(PARTITIONS)})
    copy = _hedge_of(machine, step, alone)
    assert copy.body.lane == ""
    assert key_of(logged(copy)) == f"t1/{step}/1"

    # The other coder's heartbeats are too old (owner_fresh_s) or it is stopping.
    for stale in (
        Owner("coder-0", now - timedelta(seconds=60)),
        Owner("coder-0", now, live=False),
    ):
        machine, step = _straggling()
        straggler = _where(machine.keys[(step, 0)])
        owners = {p: Owner("coder-1", now) for p in range(PARTITIONS)}
        owners.update({p: stale for p in range(PARTITIONS) if p != straggler})
        assert _hedge_of(machine, step, OwnerMap(PARTITIONS, owners)).body.lane == ""


def test_the_lane_avoids_the_owner_not_just_the_partition() -> None:
    """Any partition the straggler's coder holds is out, not only the straggler's."""
    machine, step = _straggling()
    now = machine.requested_at[step] + timedelta(seconds=5)
    straggler = _where(machine.keys[(step, 0)])
    # coder-0 owns one partition only; coder-1 (the straggler's) all the others.
    target = next(p for p in range(PARTITIONS) if p != straggler)
    now_map: dict[int, Owner] = {p: Owner("coder-1", now) for p in range(PARTITIONS)}
    now_map[target] = Owner("coder-0", now)
    copy = _hedge_of(machine, step, OwnerMap(PARTITIONS, now_map))
    assert _where(f"t1/{copy.body.lane}") == target


def test_hedge_lane_is_a_pure_function_of_its_inputs() -> None:
    machine, step = _straggling()
    now = machine.requested_at[step]
    owners = _split("coder-1", "coder-0", set(range(0, PARTITIONS, 2)), now)
    keys = ["t1/s5"]
    lanes = {hedge_lane("t1", "s5", 1, owners, keys, now, 10.0) for _ in range(3)}
    assert len(lanes) == 1
    [lane] = lanes
    assert owners.owners[_where(f"t1/{lane}")].instance == "coder-0"
    assert _where(f"t1/{lane}") % 2 == 1


def _beat(instance: str, at: Any, parts: list[int], state: Any = "running") -> Envelope[Any]:
    body = Heartbeat(
        instance=instance, role="coder", state=state, assigned={"x.steps.coder": parts}
    )
    return Envelope.new(body, sender=Sender(role="coder", instance=instance), created_at=at)


def test_the_book_maps_each_partition_to_its_newest_claimant() -> None:
    machine, _ = _straggling()
    t0 = machine.requested_at["s5"]
    book = OwnerBook()
    assert book.apply(_beat("coder-0", t0, [0, 1, 2]))
    assert book.apply(_beat("coder-1", t0, [3, 4, 5]))
    # A rebalance: coder-1 takes partition 2; coder-0's next heartbeat no longer has it.
    assert book.apply(_beat("coder-1", t0 + timedelta(seconds=1), [2, 3, 4, 5]))
    assert not book.apply(_beat("coder-1", t0, [3]))  # an older one, read late
    m = book.owner_map("x.steps.coder", 6)
    assert {p: o.instance for p, o in m.owners.items()} == {
        0: "coder-0",
        1: "coder-0",
        2: "coder-1",
        3: "coder-1",
        4: "coder-1",
        5: "coder-1",
    }
    book.apply(_beat("coder-0", t0 + timedelta(seconds=2), [0, 1], state="stopping"))
    m = book.owner_map("x.steps.coder", 6)
    assert not m.owners[0].live
    assert m.owners[3].live
    # Silent for FORGET_AFTER_S: gone from the map.
    assert book.owner_map("x.steps.coder", 6, now=t0 + timedelta(hours=1)).owners == {}
    assert book.owner_map("other", 6).owners == {}
    assert not book.apply(Logged(_beat("coder-0", t0, [0])))  # not a record
