"""End-to-end pipeline benchmark: every service a process, a real local Kafka.

Two runs with the simulated model:
1. default latency (lognormal, mean 0.3 s per model call): end-to-end latency
   of each task from submission to its TaskCompleted, p50 and p99;
2. latency 0: tasks per second through the whole team (planning, steps,
   reviews, consensus), i.e. the coordination overhead alone.

Tasks are submitted as raw JSON on synod.tasks, all at once. Prints a table,
or with --json one JSON document. Asserts nothing about time.

`--clocks on,off` runs both with causal clocks stamped and merged (the
default) and without (SYNOD_CAUSAL_CLOCKS=false), on one broker, to show
what vector clocks, Lamport and HLC cost a hop (docs/ordering.md).

    .venv/bin/python bench/pipeline.py [--json] [--tasks N] [--clocks on,off]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from machine import describe, machine_info  # bench/machine.py; bench/ is not a package
from synod.dev import localkafka
from synod.dev.localrun import LocalRun
from synod.transport.topics import RESULTS, TASKS, topic_name
from synod.wire import Codec, TaskCompleted, TaskFailed


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_run(
    bootstrap: str, latency: str, n: int, run_dir: Path, clocks: bool = True
) -> dict[str, Any]:
    os.environ["SYNOD_LLM_BACKEND"] = "sim"
    os.environ["SYNOD_LLM_SIM_LATENCY"] = latency
    os.environ["SYNOD_CAUSAL_CLOCKS"] = "true" if clocks else "false"
    run = LocalRun(
        bootstrap=bootstrap,
        prefix=f"bench{uuid.uuid4().hex[:6]}.",
        run_dir=run_dir,
        replicas={
            "consensus": 1,
            "planner": 1,
            "researcher": 1,
            "coder": 2,
            "reviewer": 3,
            "gateway": 0,
        },
    )
    codec = Codec()
    try:
        await run.start()
        await run.wait_ready()
        consumer = AIOKafkaConsumer(
            topic_name(RESULTS, run.prefix),
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=f"bench-{uuid.uuid4().hex}",
        )
        await consumer.start()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        submitted: dict[str, float] = {}
        for i in range(n):
            task_id = f"b-{i}-{uuid.uuid4().hex[:6]}"
            value = json.dumps({"task_id": task_id, "goal": f"Write helper {i}"}).encode()
            submitted[task_id] = time.perf_counter()
            await producer.send(topic_name(TASKS, run.prefix), value, key=task_id.encode())
        await producer.flush()
        first = min(submitted.values())
        done: dict[str, float] = {}
        failed = 0
        deadline = time.monotonic() + 600
        while len(done) + failed < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    env = codec.decode(r.value)
                    if env.task_id is None or env.task_id in done:
                        continue
                    if isinstance(env.body, TaskCompleted):
                        done[env.task_id] = time.perf_counter()
                    elif isinstance(env.body, TaskFailed):
                        failed += 1
        await producer.stop()
        await consumer.stop()
    finally:
        run.stop()
    latencies = [done[t] - submitted[t] for t in done]
    span = max(done.values()) - first if done else float("nan")
    return {
        "sim_latency": latency,
        "tasks": n,
        "completed": len(done),
        "failed": failed,
        "p50_s": round(_pct(latencies, 0.5), 3) if latencies else None,
        "p99_s": round(_pct(latencies, 0.99), 3) if latencies else None,
        "tasks_per_s": round(len(done) / span, 2) if done else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--clocks", default="on", help="on, off or on,off (both, one run)")
    args = parser.parse_args()
    settings = [c.strip() for c in args.clocks.split(",") if c.strip()]
    if not settings or any(c not in ("on", "off") for c in settings):
        parser.error("--clocks takes on, off or on,off")
    with tempfile.TemporaryDirectory(prefix="synod-bench-") as tmp:
        info = localkafka.start(Path(tmp) / "kafka")
        try:
            runs = []
            for setting in settings:
                clocks = setting == "on"
                _log(f"clocks {setting}: default sim latency (lognormal mean 0.3 s)")
                row = asyncio.run(
                    one_run(
                        info.bootstrap,
                        "lognormal:0.3:0.5",
                        args.tasks,
                        Path(tmp) / f"r1-{setting}",
                        clocks,
                    )
                )
                runs.append({"clocks": setting, **row})
                _log(f"clocks {setting}: sim latency 0")
                row = asyncio.run(
                    one_run(
                        info.bootstrap,
                        "fixed:0",
                        args.tasks * 2,
                        Path(tmp) / f"r2-{setting}",
                        clocks,
                    )
                )
                runs.append({"clocks": setting, **row})
        finally:
            localkafka.stop(Path(tmp) / "kafka")
    doc: dict[str, Any] = {
        "machine": machine_info(kafka=info.version),
        "services": "consensus 1, planner 1, researcher 1, coder 2, reviewer 3 (processes)",
        "runs": runs,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{describe(doc['machine'])}; {doc['services']}")
    print(
        f"{'clocks':<7}{'sim latency':<22}{'tasks':>6}{'done':>6}{'failed':>7}{'p50 s':>8}"
        f"{'p99 s':>8}{'tasks/s':>9}"
    )
    for row in runs:
        print(
            f"{row['clocks']:<7}{row['sim_latency']:<22}{row['tasks']:>6}{row['completed']:>6}"
            f"{row['failed']:>7}"
            f"{row['p50_s']!s:>8}{row['p99_s']!s:>8}{row['tasks_per_s']:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
