"""CAP per task, measured: real partitions (toxiproxy) between services and the broker.

For each scenario and partition mode it starts the whole team as processes (sim
backend) on a broker with zones (`localkafka.start(..., zones=N)`), submits
tasks, applies the fault through `synod.dev.netfaults`, heals, waits for every
outcome (and every reconciliation), and reports from the run's own log:

- done_during: tasks that completed while the fault was on;
- p50_s / p99_s: submission to first outcome (nearest rank);
- provisional: provisional decisions; overturned: Reconciled that overturned one;
- wrong: tasks whose standing outcome is not exactly one (lost or duplicated) or
  rests on an overturned decision; violations: `synod check` over the run's log.

Scenarios: reviewers-1of3 and reviewers-2of3 (reviewer zones cut during the vote),
reviewers-2of3-reject (the same, and the cut-away jurors reject the first answer),
planner-cut (15 s, mid-task), all-cut (every service cut 30 s), gray-coder (2.5 s
latency on one coder's zone; plan tasks, so the hedge rule applies). docs/cap.md's
table is this script's output. Asserts nothing about time.

    .venv/bin/python bench/cap.py [--json] [--tasks 3] [--scenarios a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from machine import describe, machine_info
from synod.cli.check import run_check
from synod.cli.teamrun import submission
from synod.core.plan.dag import Plan
from synod.dev import localkafka
from synod.dev.localrun import LocalRun
from synod.dev.netfaults import NetFaults
from synod.transport import Publisher
from synod.transport.topics import RESULTS, TASK_EVENTS, TASKS, TopicSpec, topic_name
from synod.wire import (
    Codec,
    Decision,
    Envelope,
    PlanStep,
    Reconciled,
    Sender,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
)

CODEC = Codec()
TEAM = {
    "planner": 1,
    "researcher": 1,
    "coder": 2,
    "reviewer": 3,
    "consensus": 1,
    "supervisor": 1,
    "gateway": 0,
}
ALL_ZONED = {
    "planner-0": "z1",
    "researcher-0": "z2",
    "coder-0": "z2",
    "coder-1": "z5",
    "reviewer-0": "z3",
    "reviewer-1": "z6",
    "reviewer-2": "z7",
    "consensus-0": "z4",
    "supervisor-0": "z4",
}
ENV = {
    "SYNOD_LLM_BACKEND": "sim",
    "SYNOD_VOTE_DEADLINE_S": "8",
    "SYNOD_LLM_SIM_LATENCY": "fixed:0.5",
    # cp's no-quorum must end the task (naming the voters), not park it for a person.
    "SYNOD_ESCALATE": "false",
}


def _log(msg: str) -> None:
    print(f"[cap] {msg}", file=sys.stderr, flush=True)


@dataclass
class Fault:
    """What a scenario does to the network: `apply` after submitting, `heal` after
    `hold_s` or once `until` holds for the results seen (whichever is first)."""

    zones: list[str]
    apply: Callable[[NetFaults], None]
    hold_s: float
    wait_first: bool = False  # apply once a step is requested (mid-task), not at once
    until_done: bool = False  # hold the fault until every task has ended (gray failures)


@dataclass
class Scenario:
    name: str
    modes: list[str]
    fault: Fault
    plan_tasks: bool = False
    env: dict[str, str] = field(default_factory=dict)


def _cut(*zones: str) -> Callable[[NetFaults], None]:
    def apply(net: NetFaults) -> None:
        for zone in zones:
            net.cut(zone)

    return apply


SCENARIOS = {
    "reviewers-1of3": Scenario("reviewers-1of3", ["cp", "ap"], Fault(["z6"], _cut("z6"), 40)),
    "reviewers-2of3": Scenario(
        "reviewers-2of3", ["cp", "ap"], Fault(["z6", "z7"], _cut("z6", "z7"), 45)
    ),
    # The cut-away jurors reject every task's first answer (the sim, on demand): the
    # full electorate overturns what the reachable one decided, and the task reopens.
    "reviewers-2of3-reject": Scenario(
        "reviewers-2of3-reject",
        ["ap"],
        Fault(["z6", "z7"], _cut("z6", "z7"), 45),
        env={"SYNOD_LLM_SIM_WRONG_STEPS": "*/answer/b*/reviewer-[12]"},
    ),
    "planner-cut": Scenario(
        "planner-cut", ["cp", "ap"], Fault(["z1"], _cut("z1"), 15, wait_first=True)
    ),
    "all-cut": Scenario(
        "all-cut",
        ["cp", "ap"],
        Fault(
            ["z1", "z2", "z3", "z4", "z5", "z6", "z7"],
            _cut(*["z1", "z2", "z3", "z4", "z5", "z6", "z7"]),
            30,
        ),
    ),
    "gray-coder": Scenario(
        "gray-coder",
        ["cp"],
        Fault(["z5"], lambda net: net.slow("z5", latency_ms=2500), 0, until_done=True),
        plan_tasks=True,
    ),
}


@dataclass
class Row:
    scenario: str
    mode: str
    tasks: int
    done_during: int = 0
    p50_s: float | None = None
    p99_s: float | None = None
    provisional: int = 0
    overturned: int = 0
    confirmed: int = 0
    hedges: int = 0
    wrong: int = 0
    violations: int = 0
    failed: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)


async def _read_all(bootstrap: str, spec: TopicSpec, prefix: str) -> list[Envelope[Any]]:
    consumer = AIOKafkaConsumer(
        topic_name(spec, prefix),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"bench-cap-{uuid.uuid4().hex}",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Envelope[Any]] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1500)
            if not batch:
                return out
            for records in batch.values():
                out.extend(CODEC.decode(r.value) for r in records)
    finally:
        await consumer.stop()


def _nearest_rank(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(1, math.ceil(q * len(ordered))) - 1], 2)


def _standing(envs: list[Envelope[Any]], task: str) -> list[Envelope[Any]]:
    """The task's outcomes that still count: overturned provisional ones do not."""
    overturned = {
        e.body.decision_id
        for e in envs
        if isinstance(e.body, Reconciled) and e.task_id == task and not e.body.confirmed
    }
    seen: dict[str, Envelope[Any]] = {}
    for e in envs:
        if e.task_id != task or not isinstance(e.body, TaskCompleted | TaskFailed):
            continue
        if isinstance(e.body, TaskCompleted) and e.body.decision_id in overturned:
            continue
        seen.setdefault(e.message_id, e)
    return list(seen.values())


async def _submit(run: LocalRun, scenario: Scenario, mode: str, tasks: list[str]) -> None:
    publisher = Publisher(run.bootstrap or "", client_id="bench-cap")
    await publisher.start()
    try:
        for task in tasks:
            if scenario.plan_tasks:
                # As tests/chaos/test_partitions_long.py's gray coder: 16 steps and a
                # cap above them, so copies are not held back for want of room (the
                # cap counts attempts, not coders: docs/cap.md, "The limit").
                steps = [
                    PlanStep(step_id=f"s{i}", title=f"file {i}", files=[f"f{i}.py"])
                    for i in range(16)
                ]
                env = submission(Plan.from_steps(steps, name="gray"), task, "bench-cap", agents=32)
            else:
                env = Envelope.new(
                    TaskSubmitted(goal=f"{task}: add two numbers", partition_mode=mode),
                    sender=Sender(role="client", instance="bench-cap"),
                    task_id=task,
                )
            await publisher.publish(topic_name(TASKS, run.prefix), env)
    finally:
        await publisher.stop()


async def _wait(
    run: LocalRun, done: Callable[[list[Envelope[Any]]], bool], timeout_s: float
) -> list[Envelope[Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        envs = await _read_all(run.bootstrap or "", RESULTS, run.prefix)
        if done(envs) or time.monotonic() > deadline:
            return envs
        await asyncio.sleep(1)


async def run_one(
    info: localkafka.BrokerInfo, net: NetFaults, work: Path, scenario: Scenario, mode: str, n: int
) -> Row:
    row = Row(scenario.name, mode, n)
    name = f"{scenario.name}-{mode}".replace("-", "")[:22]
    tasks = [f"{scenario.name}-{mode}-{i}" for i in range(n)]
    net.heal_all()
    saved = dict(os.environ)
    os.environ.update({**ENV, **scenario.env})
    run = LocalRun(
        bootstrap=info.bootstrap,
        prefix=f"{name}{uuid.uuid4().hex[:6]}.",
        run_dir=work / name,
        gateway_port=localkafka.free_port(),
        replicas=dict(TEAM),
        bootstraps={i: net.bootstrap(z) for i, z in ALL_ZONED.items()},
    )
    stop = asyncio.Event()
    started = time.monotonic()
    try:
        await run.start()
        await run.wait_ready()
        watcher = asyncio.create_task(run.watch(stop))
        if not scenario.fault.wait_first:
            scenario.fault.apply(net)
        await _submit(run, scenario, mode, tasks)
        if scenario.fault.wait_first:
            await asyncio.sleep(3)  # steps are out: mid-task
            scenario.fault.apply(net)
        cut_at = time.time()

        def finished(envs: list[Envelope[Any]]) -> bool:
            ended = all(_standing(envs, t) for t in tasks)
            pending = any(
                isinstance(e.body, TaskCompleted)
                and e.body.provisional
                and not any(
                    isinstance(x.body, Reconciled) and x.body.decision_id == e.body.decision_id
                    for x in envs
                )
                for e in envs
            )
            return ended and not pending

        if scenario.fault.until_done:
            await _wait(run, finished, 300)
        else:
            await asyncio.sleep(scenario.fault.hold_s)
        healed_at = time.time()
        net.heal_all()
        results = await _wait(run, finished, 300)
        await asyncio.sleep(3)  # let duplicates, if any, land
        results = await _read_all(run.bootstrap or "", RESULTS, run.prefix)
        events = await _read_all(run.bootstrap or "", TASK_EVENTS, run.prefix)
        _measure(row, tasks, results, events, cut_at, healed_at)
        doc = await run_check(run.bootstrap or "", run.prefix, None)
        row.violations = len(doc.get("violations", [])) if not doc["ok"] else 0
        if not doc["ok"]:
            row.notes.append(doc["text"][:500])
        stop.set()
        await watcher
    finally:
        stop.set()
        run.stop()
        os.environ.clear()
        os.environ.update(saved)
        net.heal_all()
    row.wall_s = round(time.monotonic() - started, 1)
    return row


def _measure(
    row: Row,
    tasks: list[str],
    results: list[Envelope[Any]],
    events: list[Envelope[Any]],
    cut_at: float,
    healed_at: float,
) -> None:
    submitted = {
        e.task_id: e.created_at.timestamp() for e in events if isinstance(e.body, TaskSubmitted)
    }
    latencies = []
    for task in tasks:
        outs = sorted(
            (
                e
                for e in results
                if e.task_id == task and isinstance(e.body, TaskCompleted | TaskFailed)
            ),
            key=lambda e: e.created_at,
        )
        standing = _standing(results, task)
        if len(standing) != 1:
            row.wrong += 1
            row.notes.append(f"{task}: {len(standing)} standing outcomes")
        elif isinstance(standing[0].body, TaskFailed):
            row.failed += 1
        if outs and task in submitted:
            first = outs[0].created_at.timestamp()
            latencies.append(first - submitted[task])
            if isinstance(outs[0].body, TaskCompleted) and cut_at <= first <= healed_at:
                row.done_during += 1
    row.p50_s = _nearest_rank(latencies, 0.5)
    row.p99_s = _nearest_rank(latencies, 0.99)
    decided = {e.message_id: e.body for e in events if isinstance(e.body, Decision)}
    row.provisional = sum(1 for d in decided.values() if d.provisional)
    reconciled = {e.message_id: e.body for e in events if isinstance(e.body, Reconciled)}
    row.overturned = sum(1 for r in reconciled.values() if not r.confirmed)
    row.confirmed = sum(1 for r in reconciled.values() if r.confirmed)
    row.hedges = sum(
        1
        for e in events
        if type(e.body).__name__ == "StepRequested" and e.body.prompt_variant == "hedge"
    )


@contextlib.contextmanager
def _broker(zones: int) -> Iterator[tuple[localkafka.BrokerInfo, NetFaults, Path]]:
    with tempfile.TemporaryDirectory(prefix="synod-bench-cap-") as tmp:
        work = Path(tmp)
        try:
            info = localkafka.start(work / "kafka", zones=zones)
            with NetFaults.start(info, work / "toxiproxy") as net:
                yield info, net, work
        finally:
            localkafka.stop(work / "kafka")


async def main_async(
    args: argparse.Namespace, info: localkafka.BrokerInfo, net: NetFaults, work: Path
) -> dict[str, Any]:
    rows: list[Row] = []
    for name in args.chosen:
        scenario = SCENARIOS[name]
        for mode in scenario.modes:
            _log(f"{name} {mode}: {args.tasks} tasks")
            row = await run_one(info, net, work, scenario, mode, args.tasks)
            _log(f"  {row}")
            rows.append(row)
    return {"machine": machine_info(info.version), "rows": [r.__dict__ for r in rows]}


HEADERS = [
    ("scenario", "scenario"),
    ("mode", "mode"),
    ("tasks", "tasks"),
    ("done_during", "completed during fault"),
    ("p50_s", "p50 s"),
    ("p99_s", "p99 s"),
    ("provisional", "provisional"),
    ("confirmed", "confirmed"),
    ("overturned", "overturned"),
    ("failed", "failed"),
    ("hedges", "hedges"),
    ("wrong", "wrong/lost/dup"),
    ("violations", "check violations"),
]


def table(doc: dict[str, Any]) -> str:
    lines = [
        "| " + " | ".join(h for _, h in HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for row in doc["rows"]:
        lines.append(
            "| " + " | ".join("-" if row[k] is None else str(row[k]) for k, _ in HEADERS) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--tasks", type=int, default=3, help="tasks per scenario and mode")
    parser.add_argument("--scenarios", default="", help=f"comma-separated: {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    args.chosen = args.scenarios.split(",") if args.scenarios else list(SCENARIOS)
    unknown = [s for s in args.chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    # The broker's start-up waits with an event loop of its own: before ours.
    with _broker(8) as (info, net, work):
        doc = asyncio.run(main_async(args, info, net, work))
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(describe(doc["machine"]))
        print(table(doc))


if __name__ == "__main__":
    main()
