"""Dispatch latency through the real services: a step's completion to each dependent's start.

Every service runs as a process (`LocalRun`) on a local broker, the simulated
model answers. Two parts:

1. **Hops.** Tasks that are chains of steps (no files), `--steps-s` per step
   (fixed), run with 1, 10 and 100 tasks in flight. For every step that
   waited on another, the time from its trigger's `StepCompleted` being made
   on the worker to the dependent step starting on a worker, cut at the
   hops it takes:

   | hop | from | to |
   |---|---|---|
   | worker → log | the completion's `created_at` (worker) | its append to synod.task-events |
   | log → planner fold | that append | the dependent's `StepRequested.created_at` (planner) |
   | planner → request on the log | that | the request's append to synod.task-events |
   | log → forward | that append | the request's append to synod.steps.coder |
   | forward → worker start | that append | the attempt's start on a worker |

   Appends are broker times: the bench creates those two topics with
   `message.timestamp.type=LogAppendTime` (ms resolution), so a record's
   timestamp is when the log took it. A worker start is its outcome's
   `created_at` minus the step's `duration_s` (both measured by the worker).
   When the planner forwards in the same transaction as the log record (ADR
   0012), "planner → request on the log" and "log → forward" both end at the
   commit, so "log → forward" reads as the gap between two appends of one
   transaction.
2. **Shapes.** DAGs that are not the paper's (fork-join of width 10, four
   parallel chains joined, a seeded random layered graph, three fork-joins in
   a row) through `synod team run`'s `run_once` in the three modes, `--agents`
   coders, lognormal steps of mean `--shape-step-s`: makespan / clairvoyant,
   speedup and Amdahl's bound (`RunReport`).

Prints tables, or with --json one JSON document. Asserts nothing about time.

    .venv/bin/python bench/dispatch.py [--json] [--quick] [--in-flight 1,10,100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from machine import cpu_s, describe, machine_info  # bench/machine.py; bench/ is not a package
from synod.cli.teamrun import MODES, run_once, submission
from synod.core.plan.dag import Plan, load_project
from synod.dev import localkafka
from synod.dev.localrun import LocalRun
from synod.errors import ConfigError
from synod.transport import Publisher
from synod.transport.reader import PartitionReader, Since, decode, topic_partitions
from synod.transport.topics import HEARTBEATS, STEPS_CODER, TASK_EVENTS, TASKS, topic_name
from synod.wire import Envelope, StepCompleted, StepFailed, StepRequested, TaskCompleted, TaskFailed

HOPS = (
    "worker_to_log",
    "log_to_fold",
    "fold_to_request_logged",
    "logged_to_forwarded",
    "forwarded_to_worker_start",
)
HOP_TITLES = {
    "worker_to_log": "worker → log",
    "log_to_fold": "log → planner fold",
    "fold_to_request_logged": "planner → request on the log",
    "logged_to_forwarded": "log → forward",
    "forwarded_to_worker_start": "forward → worker start",
    "total": "completion → dependent start",
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    """Nearest rank: the ceil(q*n)-th smallest."""
    ordered = sorted(values)
    rank = max(1, -(-int(q * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


# ------------------------------------------------------------------ shapes


def _project(name: str, deps: dict[str, list[str]], files: bool = True) -> Plan:
    tasks = [
        {
            "id": step,
            "title": f"step {step}",
            "description": f"write {step}",
            "dependencies": after,
            "files": [f"{step}.py"] if files else [],
        }
        for step, after in deps.items()
    ]
    return load_project({"project": name, "description": name, "tasks": tasks})


def fork_join(width: int) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {"fork": []}
    deps.update({f"w{i}": ["fork"] for i in range(width)})
    deps["join"] = [f"w{i}" for i in range(width)]
    return deps


def parallel_chains(chains: int, length: int) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {}
    for c in range(chains):
        for i in range(length):
            deps[f"c{c}s{i}"] = [f"c{c}s{i - 1}"] if i else []
    deps["join"] = [f"c{c}s{length - 1}" for c in range(chains)]
    return deps


def random_layered(
    seed: int, layers: int = 5, width: tuple[int, int] = (2, 6)
) -> dict[str, list[str]]:
    rng = random.Random(seed)
    deps: dict[str, list[str]] = {}
    previous: list[str] = []
    for layer in range(layers):
        names = [f"l{layer}n{i}" for i in range(rng.randint(*width))]
        for name in names:
            deps[name] = (
                sorted(rng.sample(previous, rng.randint(1, min(3, len(previous)))))
                if previous
                else []
            )
        previous = names
    return deps


def fork_join_series(stages: int, width: int) -> dict[str, list[str]]:
    """Stages of fork-joins: every stage pays the dispatch delay twice."""
    deps: dict[str, list[str]] = {"s0": []}
    for s in range(stages):
        deps.update({f"s{s}w{i}": [f"s{s}"] for i in range(width)})
        deps[f"s{s + 1}"] = [f"s{s}w{i}" for i in range(width)]
    return deps


def chain(length: int) -> dict[str, list[str]]:
    return {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(length)}


SHAPES = {
    "fork-join-10": lambda: fork_join(10),
    "chains-4x4": lambda: parallel_chains(4, 4),
    "layered-r7": lambda: random_layered(7),
    "fork-join-3x4": lambda: fork_join_series(3, 4),
}


# ------------------------------------------------------------------ the run


async def _log_append_topics(bootstrap: str, prefix: str) -> None:
    """The two topics the hops are read from, with broker append times as timestamps."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = []
        for spec in (TASK_EVENTS, STEPS_CODER):
            config = {**spec.config(1), "message.timestamp.type": "LogAppendTime"}
            topics.append(
                NewTopic(topic_name(spec, prefix), spec.partitions, 1, topic_configs=config)
            )
        await admin.create_topics(topics)
    finally:
        await admin.close()


def _ms(envelope: Envelope[Any]) -> float:
    return envelope.created_at.timestamp() * 1000


async def _read(bootstrap: str, topics: list[str], since_ms: int) -> list[Any]:
    async with PartitionReader(bootstrap, client_id="bench-dispatch") as reader:
        await reader.assign(await topic_partitions(bootstrap, topics), Since(since_ms))
        return decode(await reader.read_to_end(120.0)).received


def hop_samples(
    events: list[Any], forwarded: list[Any], plans: dict[str, Plan]
) -> list[dict[str, float]]:
    """One sample per dependent step's first request: its hops from the completion that freed it."""
    appended_fwd = {got.envelope.message_id: got.record.timestamp_ms for got in forwarded}
    by_task: dict[str, list[Any]] = defaultdict(list)
    for got in events:
        if got.envelope.task_id in plans:
            by_task[got.envelope.task_id].append(got)
    samples = []
    for task_id, records in by_task.items():
        plan = plans[task_id]
        records.sort(key=lambda got: (got.record.partition, got.record.offset))
        requests: dict[str, Any] = {}  # request id -> its record on the log
        first_request: dict[str, Any] = {}  # step -> its first request
        done: dict[str, Any] = {}  # step -> its first completion
        outcome_of: dict[str, Any] = {}  # request id -> the attempt's outcome
        for got in records:
            body = got.envelope.body
            if isinstance(body, StepRequested):
                requests[got.envelope.message_id] = got
                first_request.setdefault(body.step_id, got)
            elif isinstance(body, (StepCompleted, StepFailed)):
                for cause in got.envelope.causes:
                    outcome_of.setdefault(cause, got)
                if isinstance(body, StepCompleted):
                    done.setdefault(body.step_id, got)
        for step in plan:
            after = plan.depends_on(step.step_id)
            request = first_request.get(step.step_id)
            if not after or request is None or any(d not in done for d in after):
                continue
            trigger = max((done[d] for d in after), key=lambda got: got.record.offset)
            rid = request.envelope.message_id
            outcome = outcome_of.get(rid)
            if rid not in appended_fwd or outcome is None:
                continue
            started = _ms(outcome.envelope) - outcome.envelope.body.duration_s * 1000
            t = [
                _ms(trigger.envelope),
                trigger.record.timestamp_ms,
                _ms(request.envelope),
                request.record.timestamp_ms,
                appended_fwd[rid],
                started,
            ]
            sample = {hop: t[i + 1] - t[i] for i, hop in enumerate(HOPS)}
            sample["total"] = t[-1] - t[0]
            samples.append(sample)
    return samples


def summarise(samples: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": len(samples)}
    for hop in (*HOPS, "total"):
        values = [s[hop] for s in samples]
        out[hop] = (
            {
                "p50_ms": round(_percentile(values, 0.5), 2),
                "p99_ms": round(_percentile(values, 0.99), 2),
                "mean_ms": round(statistics.fmean(values), 2),
            }
            if values
            else None
        )
    return out


async def in_flight_run(
    bootstrap: str, prefix: str, tasks: int, waves: int, chain_length: int, agents: int
) -> list[dict[str, float]]:
    events_topic = topic_name(TASK_EVENTS, prefix)
    plan = _project(f"chain{chain_length}", chain(chain_length), files=False)
    plans: dict[str, Plan] = {}
    since = int(time.time() * 1000) - 1000
    publisher = Publisher(bootstrap, client_id="bench-dispatch")
    await publisher.start()
    try:
        async with PartitionReader(bootstrap, client_id="bench-dispatch-follow") as follow:
            await follow.assign(await topic_partitions(bootstrap, [events_topic]), "end")
            for wave in range(waves):
                ids = [f"dispatch-{tasks}-{wave}-{i}-{uuid.uuid4().hex[:6]}" for i in range(tasks)]
                for task_id in ids:
                    plans[task_id] = plan
                pending = set(ids)
                await asyncio.gather(
                    *(
                        publisher.publish(
                            topic_name(TASKS, prefix),
                            submission(plan, task_id, "bench-dispatch", agents, mode="synod"),
                        )
                        for task_id in ids
                    )
                )
                deadline = time.monotonic() + 300
                while pending and time.monotonic() < deadline:
                    for got in decode(await follow.poll(0.5)).received:
                        if isinstance(got.envelope.body, (TaskCompleted, TaskFailed)):
                            pending.discard(got.envelope.task_id or "")
                if pending:
                    raise RuntimeError(f"{len(pending)} of {tasks} tasks did not end in 300 s")
    finally:
        await publisher.stop()
    events = await _read(bootstrap, [events_topic], since)
    forwarded = await _read(bootstrap, [topic_name(STEPS_CODER, prefix)], since)
    return hop_samples(events, forwarded, plans)


async def shapes_run(
    bootstrap: str, prefix: str, agents: int, repeat: int, shapes: list[str]
) -> list[dict[str, Any]]:
    rows = []
    for shape in shapes:
        plan = _project(shape, SHAPES[shape]())
        for mode in MODES:
            for i in range(repeat):
                since = int(time.time() * 1000) - 1000
                task_id = f"shape-{shape}-{mode}-{i}-{uuid.uuid4().hex[:6]}"
                report, _ = await run_once(
                    plan,
                    bootstrap=bootstrap,
                    prefix=prefix,
                    agents=agents,
                    mode=mode,
                    task_id=task_id,
                    timeout_s=300,
                )
                events = await _read(bootstrap, [topic_name(TASK_EVENTS, prefix)], since)
                forwarded = await _read(bootstrap, [topic_name(STEPS_CODER, prefix)], since)
                hops = summarise(hop_samples(events, forwarded, {task_id: plan}))
                _log(
                    f"{shape} {mode} run {i}: makespan {report.makespan_s:.2f} s, "
                    f"{report.vs_clairvoyant:.3f}x clairvoyant"
                )
                rows.append(
                    {
                        **report.to_dict(),
                        "project": shape,
                        "vs_clairvoyant": report.vs_clairvoyant,
                        "total_p50_ms": (hops["total"] or {}).get("p50_ms"),
                    }
                )
    return rows


def _cpu_by_role(run: LocalRun) -> dict[str, float]:
    """CPU seconds used so far by each role's processes (all instances together)."""
    out: dict[str, float] = {}
    for child in run.children:
        used = cpu_s(child.proc.pid) if child.proc is not None else None
        out[child.role] = out.get(child.role, 0.0) + (used or 0.0)
    return out


async def _ready(run: LocalRun) -> None:
    """wait_ready, once the topics just created are in the broker's metadata."""
    assert run.bootstrap is not None
    for _ in range(50):
        try:
            await topic_partitions(run.bootstrap, [topic_name(HEARTBEATS, run.prefix)])
            break
        except ConfigError:
            await asyncio.sleep(0.2)
    await run.wait_ready()


async def bench(args: argparse.Namespace, bootstrap: str, run_dir: Path) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await _log_append_topics(bootstrap, prefix)
    os.environ["SYNOD_LLM_BACKEND"] = "sim"
    doc: dict[str, Any] = {"in_flight": {}, "shapes": []}
    samples: dict[str, list[dict[str, float]]] = defaultdict(list)
    # CPU seconds per step by role, summed over rounds (divided by them below): all of
    # it, and net of what the same run's services burnt idle over as long.
    cpu: dict[str, dict[str, float]] = defaultdict(dict)
    cpu_net: dict[str, dict[str, float]] = defaultdict(dict)
    idle: list[dict[str, float]] = []  # CPU seconds per second doing nothing, per run
    # Rounds alternate the outbox modes, so a shared machine's load falls on each alike.
    for round_ in range(args.rounds):
        for mode in args.outbox if args.in_flight else []:
            os.environ["SYNOD_PLANNER_OUTBOX"] = mode
            os.environ["SYNOD_LLM_SIM_LATENCY"] = f"fixed:{args.steps_s}"
            run = LocalRun(
                bootstrap=bootstrap,
                prefix=prefix,
                run_dir=run_dir / f"hops-{mode}-{round_}",
                gateway_port=localkafka.free_port(),
                replicas={"consensus": 1, "planner": 1, "coder": args.agents, "reviewer": 3},
            )
            label = "" if len(args.outbox) == 1 else f" {mode}"
            try:
                await run.start()
                await _ready(run)
                # What the services burn doing nothing (polls, heartbeats), so the
                # per-step figures below can be read net of it.
                idle_from, idle_s = _cpu_by_role(run), 3.0
                await asyncio.sleep(idle_s)
                run_idle = {
                    role: (spent - idle_from.get(role, 0.0)) / idle_s
                    for role, spent in _cpu_by_role(run).items()
                }
                idle.append(run_idle)
                for tasks in args.in_flight:
                    per_round = args.samples // args.rounds
                    waves = max(1, per_round // (tasks * (args.chain - 1)))
                    _log(f"hops{label}, round {round_}: {tasks} tasks in flight, {waves} waves")
                    before, started = _cpu_by_role(run), time.monotonic()
                    samples[f"{tasks}{label}"] += await in_flight_run(
                        bootstrap, prefix, tasks, waves, args.chain, args.agents
                    )
                    steps = tasks * waves * args.chain
                    took = time.monotonic() - started
                    used, net = cpu[f"{tasks}{label}"], cpu_net[f"{tasks}{label}"]
                    for role, spent in _cpu_by_role(run).items():
                        gross = spent - before.get(role, 0.0)
                        idle_cpu = run_idle.get(role, 0.0) * took
                        used[role] = used.get(role, 0.0) + gross / steps
                        net[role] = net.get(role, 0.0) + max(0.0, gross - idle_cpu) / steps
            finally:
                run.stop()
    doc["in_flight"] = {label: summarise(got) for label, got in samples.items()}
    for label, used in cpu.items():
        doc["in_flight"][label]["cpu_ms_per_step"] = {
            role: round(s * 1e3 / args.rounds, 2) for role, s in sorted(used.items())
        }
        doc["in_flight"][label]["cpu_ms_per_step_net_of_idle"] = {
            role: round(s * 1e3 / args.rounds, 2) for role, s in sorted(cpu_net[label].items())
        }
    if idle:
        doc["idle_cpu_ms_per_s"] = {
            role: round(statistics.fmean(r.get(role, 0.0) for r in idle) * 1e3, 1)
            for role in sorted(idle[0])
        }
    os.environ["SYNOD_PLANNER_OUTBOX"] = args.outbox[0]
    if args.shapes:
        os.environ["SYNOD_LLM_SIM_LATENCY"] = f"lognormal:{args.shape_step_s}:0.5"
        run = LocalRun(
            bootstrap=bootstrap,
            prefix=prefix,
            run_dir=run_dir / "shapes",
            gateway_port=localkafka.free_port(),
            replicas={"consensus": 1, "planner": 1, "coder": args.agents, "reviewer": 3},
        )
        try:
            await run.start()
            await _ready(run)
            doc["shapes"] = await shapes_run(
                bootstrap, prefix, args.agents, args.repeat, args.shapes
            )
        finally:
            run.stop()
    return doc


def tables(doc: dict[str, Any]) -> str:
    lines = [f"{describe(doc['machine'])} (load {doc['machine']['load_avg_1m']})", ""]
    if doc["in_flight"]:
        cols = list(doc["in_flight"])
        lines.append(
            f"hops, ms p50 / p99 (chains, fixed {doc['steps_s']} s steps, {doc['agents']} coders)"
        )
        lines.append(f"{'tasks in flight':32}" + "".join(f"{c:>16}" for c in cols))
        for hop in (*HOPS, "total"):
            cells = []
            for c in cols:
                h = doc["in_flight"][c][hop]
                cells.append(f"{h['p50_ms']:>7.1f} /{h['p99_ms']:>6.1f}" if h else f"{'-':>16}")
            lines.append(f"{HOP_TITLES[hop]:32}" + "".join(f"{x:>16}" for x in cells))
        lines.append(
            f"{'samples':32}" + "".join(f"{doc['in_flight'][c]['samples']:>16}" for c in cols)
        )
        roles = sorted({r for c in cols for r in doc["in_flight"][c].get("cpu_ms_per_step", {})})
        for role in roles:  # all of it / net of the idle rate
            cells = []
            for c in cols:
                level = doc["in_flight"][c]
                gross = level.get("cpu_ms_per_step", {}).get(role)
                net = level.get("cpu_ms_per_step_net_of_idle", {}).get(role)
                cells.append(f"{gross:>7.1f} /{net:>6.1f}" if gross is not None else "-")
            lines.append(f"{'CPU ms/step, ' + role:32}" + "".join(f"{x:>16}" for x in cells))
        lines.append("")
    if doc["shapes"]:
        lines.append(
            f"shapes ({doc['agents']} coders, lognormal steps mean {doc['shape_step_s']} s, means)"
        )
        lines.append(
            f"{'shape':14} {'mode':8} {'makespan':>9} {'clairv':>7} {'vs cl':>6} "
            f"{'speedup':>8} {'amdahl':>7} {'hedges':>6} {'p50 ms':>7}"
        )
        keys = sorted({(r["project"], r["mode"]) for r in doc["shapes"]})
        for shape, mode in keys:
            rs = [r for r in doc["shapes"] if (r["project"], r["mode"]) == (shape, mode)]

            def mean(f: str, rs: list[dict[str, Any]] = rs) -> float:
                vals = [float(r[f]) for r in rs if r.get(f) is not None]
                return statistics.fmean(vals) if vals else float("nan")

            lines.append(
                f"{shape:14} {mode:8} {mean('makespan_s'):>8.2f}s "
                f"{mean('clairvoyant_makespan_s'):>6.2f}s {mean('vs_clairvoyant'):>6.3f} "
                f"{mean('speedup'):>8.2f} {mean('amdahl_speedup'):>7.2f} {mean('hedges'):>6.1f} "
                f"{mean('total_p50_ms'):>7.1f}"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--quick", action="store_true", help="fewer samples, one run per shape")
    parser.add_argument("--agents", type=int, default=4, help="coder instances (team size)")
    parser.add_argument(
        "--in-flight", type=lambda s: [int(x) for x in s.split(",") if x], default=[1, 10, 100]
    )
    parser.add_argument(
        "--outbox",
        type=lambda s: [x for x in s.split(",") if x],
        default=["ack"],
        help="the planner outbox modes to run the hops part with: ack, transaction, read-back",
    )
    parser.add_argument("--rounds", type=int, default=1, help="hops runs per outbox mode")
    parser.add_argument("--samples", type=int, default=300, help="hop samples wanted per level")
    parser.add_argument("--chain", type=int, default=4, help="steps per task in the hops part")
    parser.add_argument("--steps-s", type=float, default=0.05, help="step time, hops part")
    parser.add_argument("--shape-step-s", type=float, default=0.3, help="mean step time, shapes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per shape and mode")
    parser.add_argument(
        "--shapes", type=lambda s: [x for x in s.split(",") if x], default=list(SHAPES)
    )
    args = parser.parse_args()
    if args.quick:
        args.samples, args.repeat = 60, 1
    with tempfile.TemporaryDirectory(prefix="synod-bench-dispatch-") as tmp:
        info = localkafka.start(Path(tmp) / "kafka")
        try:
            doc = asyncio.run(bench(args, info.bootstrap, Path(tmp)))
        finally:
            localkafka.stop(Path(tmp) / "kafka")
    doc.update(
        machine=machine_info(kafka=info.version),
        agents=args.agents,
        steps_s=args.steps_s,
        shape_step_s=args.shape_step_s,
        chain=args.chain,
    )
    print(json.dumps(doc, sort_keys=True) if args.json else tables(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
