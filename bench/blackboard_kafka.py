"""Benchmark: strong vs eventual shared knowledge through the services, on a real broker.

The same tasks as bench/blackboard.py (its `plan_for`: three researchers write
the shared key `approach`, one of them at random from a stale source; two
coders need one researcher each; a third coder joins them), but every step is
run by the real services as processes (planner, researchers, coders, one
reviewer, consensus; sim LLM backend, latency drawn per call), on a local
Kafka. Per mode, K tasks are submitted with at most F in flight.

What is counted comes from the log alone, after the run: each task's records
(task events, in offset order) are folded into the planner's own task core
(`TaskMachine`, replayed), so rework, stale reads and the coders' views are
computed by the same code as the virtual-time bench. Latency is the broker
timestamp of the outcome minus that of the submission, so no client's read
delay is in it. The run ends with `synod check` over the whole log.

    .venv/bin/python bench/blackboard_kafka.py [--tasks 20] [--in-flight 5] [--json]

Prints a table; with --json exactly one JSON document on stdout. Asserts
nothing about time; exit status 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from blackboard import MODES, measures, plan_for, summarise  # bench/ is not a package
from machine import describe, machine_info
from synod.cli.check import run_check
from synod.client import AsyncClient
from synod.core.task import Logged, TaskMachine
from synod.dev import localkafka
from synod.dev.localrun import LocalRun
from synod.transport.reader import PartitionReader, decode, topic_partitions
from synod.transport.topics import RESULTS, TASK_EVENTS, TASKS, topic_name
from synod.wire import StepRequested, TaskCompleted, TaskFailed, TaskSubmitted
from synod.wire.messages import Consistency

TEAM = {"consensus": 1, "planner": 1, "researcher": 2, "coder": 2, "reviewer": 1}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def submit_all(
    client: AsyncClient, mode: Consistency, task_ids: list[str], seed: int, in_flight: int
) -> None:
    """Submit every task, at most `in_flight` unfinished at once; wait for all outcomes."""
    gate = asyncio.Semaphore(in_flight)

    async def one(i: int, task_id: str) -> None:
        async with gate:
            plan = plan_for(random.Random(seed * 100_003 + i))
            body = TaskSubmitted(goal="Pick an approach", plan=plan, consistency=mode, reviewers=1)
            await client.submit(body, task_id=task_id)
            view = await client.wait(task_id, timeout_s=300)
            _log(f"{mode} {task_id}: {view.status().state}")

    await asyncio.gather(*(one(i, t) for i, t in enumerate(task_ids)))


async def read_log(bootstrap: str, prefix: str) -> dict[str, list[Any]]:
    """Every record of the run's task events, results and tasks topics, by task."""
    topics = [topic_name(t, prefix) for t in (TASKS, TASK_EVENTS, RESULTS)]
    async with PartitionReader(bootstrap, client_id="bench-blackboard") as reader:
        await reader.assign(await topic_partitions(bootstrap, topics))
        records = await reader.read_to_end(timeout_s=120)
    by_task: dict[str, list[Any]] = defaultdict(list)
    for got in decode(sorted(records, key=lambda r: (r.topic, r.partition, r.offset))).received:
        if got.envelope.task_id is not None:
            by_task[got.envelope.task_id].append(got)
    return by_task


def measure(task_id: str, received: list[Any], planned: int, events: str) -> dict[str, Any]:
    """What happened to one task, from its records (the same fields as bench/blackboard.py);
    `events`: the run's task events topic."""
    events_topic = [g for g in received if g.record.topic == events]
    submitted_at = min(
        g.record.timestamp_ms for g in received if isinstance(g.envelope.body, TaskSubmitted)
    )
    outcomes = [g for g in received if isinstance(g.envelope.body, TaskCompleted | TaskFailed)]
    first = min(outcomes, key=lambda g: g.record.timestamp_ms)
    machine = TaskMachine(task_id)
    for got in events_topic:
        machine.step(Logged(got.envelope, replayed=True))
    requests = {
        (g.envelope.body.step_id, g.envelope.attempt)
        for g in events_topic
        if isinstance(g.envelope.body, StepRequested)
    }
    return measures(
        task_id,
        machine,
        first.envelope.body,
        latency_s=(first.record.timestamp_ms - submitted_at) / 1000,
        calls=len(requests),
        planned=planned,
    )


async def bench(args: argparse.Namespace, bootstrap: str, run_dir: Path) -> dict[str, Any]:
    os.environ["SYNOD_LLM_BACKEND"] = "sim"
    os.environ["SYNOD_LLM_SIM_LATENCY"] = args.latency
    prefix = f"bb{uuid.uuid4().hex[:6]}."
    run = LocalRun(
        bootstrap=bootstrap,
        prefix=prefix,
        run_dir=run_dir,
        gateway_port=localkafka.free_port(),
        replicas=dict(TEAM),
    )
    tasks = {m: [f"bbk-{m}-{args.seed}-{i}" for i in range(args.tasks)] for m in MODES}
    await run.start()
    try:
        await run.wait_ready()
        async with AsyncClient(bootstrap, prefix) as client:
            for mode in MODES:
                started = time.perf_counter()
                await submit_all(client, mode, tasks[mode], args.seed, args.in_flight)
                _log(f"{mode}: {args.tasks} tasks in {time.perf_counter() - started:.1f} s")
        by_task = await read_log(bootstrap, prefix)
        checked = await run_check(bootstrap, prefix)
    finally:
        run.stop()
    planned = len(plan_for(random.Random(0)))
    events = topic_name(TASK_EVENTS, prefix)
    modes = {
        mode: summarise([measure(t, by_task[t], planned, events) for t in tasks[mode]])
        for mode in MODES
    }
    return {
        "benchmark": "blackboard-kafka",
        "machine": machine_info(),
        "team": TEAM,
        "tasks_per_mode": args.tasks,
        "in_flight": args.in_flight,
        "latency": args.latency,
        "seed": args.seed,
        "modes": modes,
        "check": {
            "ok": checked["ok"],
            "records": checked["records"],
            "facts_read": checked["checked"]["facts_read"],
            "violations": len(checked["violations"]),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20, help="tasks per mode (default 20)")
    parser.add_argument("--in-flight", type=int, default=5, help="tasks unfinished at once")
    parser.add_argument("--latency", default="lognormal:0.6:0.5", help="sim model latency per call")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.in_flight < 1:
        parser.error("--tasks and --in-flight must be at least 1")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="synod-bench-bb-") as tmp:
        info = localkafka.start(Path(tmp) / "kafka")
        try:
            report = asyncio.run(bench(args, info.bootstrap, Path(tmp)))
        finally:
            localkafka.stop(Path(tmp) / "kafka")
    report["wall_s"] = round(time.perf_counter() - started, 2)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
        return 0
    print(describe(report["machine"]))
    print(
        f"{args.tasks} tasks per mode, {args.in_flight} in flight, through the services; "
        "latency = outcome - submission on the log, s"
    )
    print(
        f"{'mode':<9} {'p50 s':>6} {'p99 s':>6} {'calls':>6} {'rework':>7} "
        f"{'reconciled':>10} {'stale/task':>10} {'wrong reads':>11} {'right':>7}"
    )
    for mode, m in report["modes"].items():
        print(
            f"{mode:<9} {m['latency_p50_s']:>6.2f} {m['latency_p99_s']:>6.2f} "
            f"{m['calls_per_task']:>6.2f} {m['rework_calls_per_task']:>7.2f} "
            f"{m['tasks_reconciled']:>10} {m['stale_steps_per_task']:>10.2f} "
            f"{m['wrong_reads_per_task']:>11.2f} {m['right']:>4}/{m['tasks']}"
        )
    c = report["check"]
    print(f"synod check: ok={c['ok']}, {c['records']} records, {c['violations']} violations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
