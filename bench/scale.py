"""The largest run this machine holds: many concurrent sim tasks through every service.

Every service a process on a real local Kafka (one broker, or `--brokers 3`: a KRaft
cluster at replication factor 3), the run's topics created with `--partitions` each.
All `--tasks` are submitted at once (that many in flight), then the bench waits for
every outcome (bounded by `--timeout`). It samples each process's resident memory and
CPU time (/proc/<pid>/stat utime+stime) every second, and at the end reads every topic
of the run back: records and bytes, and the records each role sent. Prints tasks/s,
latency p50/p99 from submission to outcome, peak RSS and CPU seconds per process,
CPU ms per message each role sent, bytes per task. Asserts nothing about time.

    .venv/bin/python bench/scale.py [--json] [--tasks N] [--partitions P] [--brokers 1|3]
        [--replicas planner=2,consensus=2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from machine import describe, machine_info  # bench/machine.py; bench/ is not a package
from synod.dev import localkafka
from synod.dev.localrun import LocalRun
from synod.transport.admin import ensure_topics
from synod.transport.topics import CATALOGUE, RESULTS, TASKS, topic_name
from synod.wire import Codec, TaskCompleted, TaskFailed

REPLICAS = {"consensus": 1, "planner": 1, "researcher": 1, "coder": 2, "reviewer": 3}
TICK_S = os.sysconf("SC_CLK_TCK")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_s(pid: int) -> float:
    # Fields after the command name (which may hold spaces, so split after ')').
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S


class Sampler:
    """Peak RSS and CPU seconds since the first sample, per named process."""

    def __init__(self) -> None:
        self.rss: dict[str, int] = {}
        self.cpu_start: dict[str, float] = {}
        self.cpu_last: dict[str, float] = {}

    def sample(self, pids: dict[str, int]) -> None:
        for name, pid in pids.items():
            with contextlib.suppress(OSError, IndexError, ValueError):
                cpu = _cpu_s(pid)
                self.cpu_start.setdefault(name, cpu)
                self.cpu_last[name] = cpu
                self.rss[name] = max(self.rss.get(name, 0), localkafka.rss_bytes(pid))

    def cpu(self, name: str) -> float:
        return self.cpu_last.get(name, 0.0) - self.cpu_start.get(name, 0.0)


async def read_back(bootstrap: str, prefix: str) -> dict[str, Any]:
    """Every record of the run's topics: count and bytes per topic, records per sender role."""
    codec = Codec()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            names = [n for n in await admin.list_topics() if n.startswith(prefix)]
            described = await admin.describe_topics(names)
        finally:
            await admin.close()
        tps = [
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        left = {tp for tp, end in ends.items() if end > 0}
        records: Counter[str] = Counter()
        size: Counter[str] = Counter()
        by_role: Counter[str] = Counter()
        while left:
            for tp, batch in (await consumer.getmany(*left, timeout_ms=1000)).items():
                for r in batch:
                    short = r.topic[len(prefix) :]
                    records[short] += 1
                    size[short] += len(r.value or b"") + len(r.key or b"")
                    try:
                        by_role[codec.decode(r.value).sender.role] += 1
                    except Exception:  # raw JSON submissions on synod.tasks: the client's
                        by_role["client"] += 1
                if batch and batch[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
        return {"records": dict(records), "bytes": dict(size), "sent_by_role": dict(by_role)}
    finally:
        await consumer.stop()


async def one_run(
    bootstrap: str, broker_pids: list[int], args: argparse.Namespace, run_dir: Path
) -> dict[str, Any]:
    os.environ["SYNOD_LLM_BACKEND"] = "sim"
    os.environ["SYNOD_LLM_SIM_LATENCY"] = args.latency
    os.environ["SYNOD_ESCALATE"] = "false"
    prefix = f"scale{uuid.uuid4().hex[:6]}."
    await ensure_topics(bootstrap, CATALOGUE, prefix=prefix, partitions=args.partitions)
    run = LocalRun(
        bootstrap=bootstrap,
        prefix=prefix,
        run_dir=run_dir,
        replicas={**args.replicas, "gateway": 0},
    )
    codec = Codec()
    sampler = Sampler()

    def pids() -> dict[str, int]:
        named = {f"broker-{i + 1}": pid for i, pid in enumerate(broker_pids)}
        return named | {c.instance: c.proc.pid for c in run.children if c.proc and c.alive}

    async def sampling() -> None:
        while True:
            sampler.sample(pids())
            await asyncio.sleep(1)

    sampler_task: asyncio.Task[None] | None = None
    try:
        await run.start()
        await run.wait_ready()
        sampler_task = asyncio.create_task(sampling())
        consumer = AIOKafkaConsumer(
            topic_name(RESULTS, prefix),
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=f"bench-{uuid.uuid4().hex}",
        )
        await consumer.start()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        submitted: dict[str, float] = {}
        _log(f"submitting {args.tasks} tasks over {args.partitions} partitions")
        for i in range(args.tasks):
            task_id = f"s-{i}-{uuid.uuid4().hex[:6]}"
            value = json.dumps({"task_id": task_id, "goal": f"Write helper {i}"}).encode()
            submitted[task_id] = time.perf_counter()
            await producer.send(topic_name(TASKS, prefix), value, key=task_id.encode())
        await producer.flush()
        submit_s = time.perf_counter() - min(submitted.values())
        first = min(submitted.values())
        done: dict[str, float] = {}
        failed: set[str] = set()
        deadline = time.monotonic() + args.timeout
        last_log = time.monotonic()
        while len(done) + len(failed) < args.tasks and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    env = codec.decode(r.value)
                    if env.task_id is None or env.task_id in done or env.task_id in failed:
                        continue
                    if isinstance(env.body, TaskCompleted):
                        done[env.task_id] = time.perf_counter()
                    elif isinstance(env.body, TaskFailed):
                        failed.add(env.task_id)
            if time.monotonic() - last_log > 15:
                last_log = time.monotonic()
                _log(
                    f"  {len(done)} done, {len(failed)} failed, {time.perf_counter() - first:.0f}s"
                )
        sampler.sample(pids())
        await producer.stop()
        await consumer.stop()
    finally:
        if sampler_task is not None:
            sampler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler_task
        run.stop()
    _log(f"{len(done)} done, {len(failed)} failed; cpu s {sampler.cpu_last}; rss {sampler.rss}")
    _log("reading the run's topics back")
    log = await read_back(bootstrap, prefix)
    latencies = [done[t] - submitted[t] for t in done]
    span = max(done.values()) - first if done else float("nan")
    cpu_by_role: dict[str, float] = defaultdict(float)
    rss_by_role: dict[str, int] = defaultdict(int)
    for name in sampler.rss:
        role = "kafka" if name.startswith("broker-") else name.rsplit("-", 1)[0]
        cpu_by_role[role] += sampler.cpu(name)
        rss_by_role[role] = max(rss_by_role[role], sampler.rss[name])
    total_records = sum(log["records"].values())
    total_bytes = sum(log["bytes"].values())
    per_message = {
        role: round(1000 * cpu / log["sent_by_role"][role], 3)
        for role, cpu in cpu_by_role.items()
        if log["sent_by_role"].get(role)
    }
    per_message["kafka (per record written)"] = round(
        1000 * cpu_by_role["kafka"] / max(total_records, 1), 3
    )
    return {
        "tasks": args.tasks,
        "partitions": args.partitions,
        "sim_latency": args.latency,
        "submit_s": round(submit_s, 2),
        "completed": len(done),
        "failed": len(failed),
        "unfinished": args.tasks - len(done) - len(failed),
        "span_s": round(span, 1),
        "tasks_per_s": round(len(done) / span, 2) if done else 0.0,
        "p50_s": round(_pct(latencies, 0.5), 2) if latencies else None,
        "p99_s": round(_pct(latencies, 0.99), 2) if latencies else None,
        "peak_rss_mib": {k: round(v / 2**20) for k, v in sorted(sampler.rss.items())},
        "cpu_s": {k: round(sampler.cpu(k), 1) for k in sorted(sampler.rss)},
        "cpu_ms_per_message_sent": per_message,
        "records": log["records"],
        "records_sent_by_role": log["sent_by_role"],
        "records_per_task": round(total_records / args.tasks, 1),
        "bytes_per_task": round(total_bytes / args.tasks),
    }


def replicas(spec: str) -> dict[str, int]:
    """REPLICAS with `role=n,...` over them."""
    out = dict(REPLICAS)
    for part in filter(None, spec.split(",")):
        role, _, n = part.partition("=")
        if role not in REPLICAS or not n.isdigit() or int(n) < 1:
            raise ValueError(
                f"--replicas: {part!r} is not role=n with n >= 1 and role one of "
                + ", ".join(REPLICAS)
            )
        out[role] = int(n)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--brokers", type=int, default=1, choices=(1, 3))
    parser.add_argument("--latency", default="exponential:0.05", help="sim model latency")
    parser.add_argument("--timeout", type=float, default=600, help="bound on the wait, s")
    parser.add_argument(
        "--replicas",
        default="",
        help="processes per role over the defaults, e.g. planner=2,consensus=2 "
        f"(defaults: {','.join(f'{r}={n}' for r, n in REPLICAS.items())})",
    )
    args = parser.parse_args()
    try:
        args.replicas = replicas(args.replicas)
    except ValueError as exc:
        parser.error(str(exc))
    with tempfile.TemporaryDirectory(prefix="synod-bench-scale-") as tmp:
        kafka_dir = Path(tmp) / "kafka"
        if args.brokers == 3:
            cluster = localkafka.start_cluster(kafka_dir, brokers=3)
            bootstrap, pids, version = cluster.bootstrap, list(cluster.pids), cluster.version
        else:
            info = localkafka.start(kafka_dir)
            bootstrap, pids, version = info.bootstrap, [info.pid], info.version
        try:
            row = asyncio.run(one_run(bootstrap, pids, args, Path(tmp) / "run"))
        finally:
            if args.brokers == 3:
                localkafka.stop_cluster(kafka_dir)
            else:
                localkafka.stop(kafka_dir)
    doc: dict[str, Any] = {
        "machine": machine_info(kafka=version),
        "brokers": args.brokers,
        "services": ", ".join(f"{r} {n}" for r, n in args.replicas.items()) + " (processes)",
        "run": row,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{describe(doc['machine'])}; {args.brokers} broker(s); {doc['services']}")
    for key, value in row.items():
        print(f"{key:<26}{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
