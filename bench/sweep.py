"""What one deadline sweep of the planner costs in CPU, by tasks in memory (issue 21).

N tasks in one planner (`synod.roles.planner.service.Planner`) on the in-memory
transport, each with a given plan of 3 steps, all requested and none answered
(tasks in flight, as bench/scale.py holds them). Then the CPU seconds
(`time.process_time`, so other work on a shared machine counts little) of:

- `every task`: the sweep as it was before the wake schedule, every machine in
  memory stepped (Quarantined, Owners, Tick, then `run`); its loop is copied here;
- `wakes, none due`: `Planner.sweep_once` when no task's wake has come (the usual
  second: deadlines are minutes away);
- `wakes, 1% due`: the same with 1 in 100 tasks due (a hedge or a deadline);
- `wakes, all due`: every task due (after a rebuild, or a quarantine change).

Each figure is the median of `--rounds` sweeps. Asserts nothing about time.

    .venv/bin/python bench/sweep.py [--json] [--tasks 1000,5000,10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from machine import describe, machine_info  # bench/machine.py; bench/ is not a package
from synod.core.task import Quarantined, Tick
from synod.dev.memoryplanner import MemoryPlanner
from synod.roles.planner.service import SWEEP_YIELD_EVERY, Planner
from synod.transport.topics import TASK_EVENTS
from synod.wire import Envelope, PlanStep, Sender, TaskSubmitted
from synod.wire.messages import utc_now

PREFIX = "b."
PARTITIONS = 64
CLIENT = Sender(role="client", instance="c")


async def planner_with(tasks: int) -> Planner:
    """A planner holding `tasks` tasks in flight, fed through the in-memory broker."""
    run = MemoryPlanner(partitions=PARTITIONS, prefix=PREFIX)
    feed = run.consumer
    await run.start()
    plan = [PlanStep(step_id=f"s{i}") for i in range(3)]
    for i in range(tasks):
        body = TaskSubmitted(goal=f"helper {i}", plan=plan, deadline_s=3_600)
        await run.publish(TASK_EVENTS, Envelope.new(body, sender=CLIENT, task_id=f"t{i}"))
        if i % 200 == 199:
            await feed.wait_idle()
    await feed.wait_idle()
    await run.planner.sweep_once()  # the first sweep: every task once (a new quarantine view)
    await feed.wait_idle()
    return run.planner


async def every_task(planner: Planner) -> None:
    """The sweep before the wake schedule: every machine of a held partition, stepped."""
    assert planner.consumer is not None
    owned = {tp.partition for tp in planner.consumer.assigned}
    now = utc_now()
    for n, (task_id, machine) in enumerate(list(planner.tasks.items())):
        if n % SWEEP_YIELD_EVERY == SWEEP_YIELD_EVERY - 1:
            await asyncio.sleep(0)
        partition = planner.partition_of.get(task_id)
        if partition not in owned or partition in planner.rebuilding:
            continue
        lock = planner.locks.get(task_id)
        if lock is None or lock.locked():
            continue
        async with lock:
            machine.step(Quarantined(planner.quarantine.active(now)))
            machine.step(planner.lanes.owners())
            machine.step(Tick(now))
            await planner.run(machine)


async def cpu_of(sweep: Any, rounds: int, before: Any = None) -> tuple[float, int]:
    """Median CPU seconds of one sweep, and the machines the last one stepped."""
    times, stepped = [], 0
    for _ in range(rounds):
        if before is not None:
            before()
        started = time.process_time()
        stepped = await sweep()
        times.append(time.process_time() - started)
    return statistics.median(times), stepped


async def measure(tasks: int, rounds: int) -> dict[str, Any]:
    started = time.perf_counter()
    planner = await planner_with(tasks)
    setup_s = time.perf_counter() - started
    ids = list(planner.tasks)

    async def full() -> int:
        await every_task(planner)
        return len(ids)

    def one_in_100() -> None:
        for task_id in ids[::100]:
            planner.wakes.soon(task_id)

    def all_of_them() -> None:
        for task_id in ids:
            planner.wakes.soon(task_id)

    every, _ = await cpu_of(full, rounds)
    none_due, stepped_none = await cpu_of(planner.sweep_once, rounds)
    some_due, stepped_some = await cpu_of(planner.sweep_once, rounds, one_in_100)
    all_due, stepped_all = await cpu_of(planner.sweep_once, rounds, all_of_them)
    return {
        "tasks": tasks,
        "setup_s": round(setup_s, 1),
        "every_task_ms": round(1000 * every, 2),
        "wakes_none_due_ms": round(1000 * none_due, 3),
        "wakes_1pct_due_ms": round(1000 * some_due, 2),
        "wakes_all_due_ms": round(1000 * all_due, 2),
        "stepped": {"none_due": stepped_none, "1pct_due": stepped_some, "all_due": stepped_all},
        "scheduled": len(planner.wakes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tasks", default="1000,5000,10000", help="comma-separated sizes")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    machine = machine_info()
    runs = [asyncio.run(measure(int(n), args.rounds)) for n in args.tasks.split(",")]
    report = {"machine": machine, "rounds": args.rounds, "runs": runs}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(describe(machine))
    print(f"CPU ms of one sweep (median of {args.rounds}), load avg {machine['load_avg_1m']}")
    print(f"{'tasks':>7} {'every task':>11} {'none due':>9} {'1% due':>8} {'all due':>8}")
    for r in runs:
        print(
            f"{r['tasks']:>7} {r['every_task_ms']:>11} {r['wakes_none_due_ms']:>9} "
            f"{r['wakes_1pct_due_ms']:>8} {r['wakes_all_due_ms']:>8}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
