"""What tracing costs: off (no endpoint) vs on (always_on sampler, OTLP/HTTP to a local receiver).

1. The hooks alone: `publish_span` + `process_span` around nothing, per hop (µs).
   Off is the path of every Synod process without an OTLP endpoint.
2. Transport hops, the worst case (no-op handlers, so the hop is all there is):
   a three-hop pipeline (publish to A; A's handler publishes to B; B's to C; C
   ends the task) through Publisher and KeyOrderedConsumer on a local broker:
   tasks/s with every task sent at once, and hop latency (publish -> handler
   start) p50/p99 at a paced 200 tasks/s. Off and on alternate, `--rounds`
   rounds each; the median round is reported.
3. The real services (bench/pipeline.py's run: every service a process, the
   simulated model at latency 0, i.e. coordination alone): tasks/s and
   end-to-end p50/p99, tracing off, then on (the services read OTEL_*).

The receiver (tests/otlp_receiver.py) runs as its own process, as a collector
would. Asserts nothing about time.

    .venv/bin/python bench/tracing.py [--json] [--quick] [--rounds N] [--tasks N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.version import __version__ as otel_version

import pipeline as services_pipeline  # bench/pipeline.py, beside this file
from machine import describe, machine_info  # bench/machine.py; bench/ is not a package
from synod import observability
from synod.dev import localkafka
from synod.observability.hops import process_span, publish_span
from synod.transport import (
    ConsumerConfig,
    KeyOrderedConsumer,
    Publisher,
    RawRecord,
    Received,
)
from synod.wire import Envelope, Sender, StepCompleted

SENDER = Sender(role="planner", instance="bench")
HOPS = 3


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Discard(SpanExporter):
    """Takes spans and drops them: the hooks' cost without the export's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@contextmanager
def tracing(on: bool, endpoint: str | None) -> Iterator[TracerProvider | None]:
    """Synod's spans to an OTLP/HTTP endpoint (None: discarded), or tracing off."""
    if not on:
        observability.use_tracer_provider(None)
        yield None
        return
    provider = TracerProvider(
        resource=Resource.create({"service.name": "synod-bench"}), sampler=ALWAYS_ON
    )
    exporter = _Discard() if endpoint is None else OTLPSpanExporter(f"{endpoint}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    observability.use_tracer_provider(provider)
    try:
        yield provider
    finally:
        observability.use_tracer_provider(None)
        provider.shutdown()


# ---------------------------------------------------------------- 1. the hooks


def hooks_us_per_hop(n: int) -> float:
    envelope = Envelope.new(StepCompleted(step_id="s", output="x"), sender=SENDER, task_id="t1")
    start = time.perf_counter()
    for i in range(n):
        with publish_span("bench.a", envelope) as hop:
            sent = hop.envelope
        record = RawRecord(
            "bench.a",
            0,
            i,
            b"t1",
            b"",
            (("traceparent", sent.trace.traceparent.encode()),) if sent.trace.traceparent else (),
            int(time.time() * 1000),
        )
        with process_span(record, sent, "bench"):
            pass
    return (time.perf_counter() - start) / n * 1e6


# ---------------------------------------------------------------- 2. real hops


async def _topics(bootstrap: str) -> list[str]:
    names = [f"bench.{uuid.uuid4().hex[:8]}.{i}" for i in range(HOPS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 6, 1) for n in names])
    finally:
        await admin.close()
    return names


async def _no_dead_letters(record: RawRecord, reason: str, message: str, cls: str) -> None:
    raise AssertionError(f"dead letter in a benchmark: {reason} {message}")


async def pipeline(bootstrap: str, tasks: int, rate: float | None) -> dict[str, Any]:
    """Run `tasks` through three hops; paced at `rate` tasks/s, or all at once if None."""
    topics = await _topics(bootstrap)
    sent_at: dict[tuple[int, str], float] = {}
    hop_latency: list[float] = []
    finished = asyncio.Event()
    done = 0
    publisher = Publisher(bootstrap)
    await publisher.start()

    def handler_for(index: int) -> Any:
        async def handle(msg: Received) -> None:
            nonlocal done
            now = time.perf_counter()
            hop_latency.append(now - sent_at.pop((index, msg.envelope.message_id)))
            if index + 1 < HOPS:
                nxt = Envelope.new(
                    StepCompleted(step_id="s", output=msg.envelope.body.output),
                    sender=SENDER,
                    task_id=msg.envelope.task_id,
                )
                sent_at[(index + 1, nxt.message_id)] = time.perf_counter()
                await publisher.publish(topics[index + 1], nxt)
                return
            done += 1
            if done == tasks:
                finished.set()

        return handle

    consumers = [
        KeyOrderedConsumer(
            bootstrap,
            f"bench-{uuid.uuid4().hex[:8]}",
            [topic],
            handler_for(i),
            dead_letter=_no_dead_letters,
            config=ConsumerConfig(concurrency=200),
        )
        for i, topic in enumerate(topics)
    ]
    for consumer in consumers:
        await consumer.start()
    async with asyncio.timeout(30):
        while not all(c.assigned for c in consumers):  # noqa: ASYNC110 - polled state
            await asyncio.sleep(0.01)

    async def submit(i: int) -> None:
        env = Envelope.new(
            StepCompleted(step_id="s", output=str(i)), sender=SENDER, task_id=f"task-{i}"
        )
        sent_at[(0, env.message_id)] = time.perf_counter()
        await publisher.publish(topics[0], env)

    start = time.perf_counter()
    if rate is None:
        await asyncio.gather(*(submit(i) for i in range(tasks)))
    else:
        pending = []
        for i in range(tasks):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(submit(i)))
        await asyncio.gather(*pending)
    async with asyncio.timeout(120):
        await finished.wait()
    elapsed = time.perf_counter() - start
    for consumer in consumers:
        await consumer.stop()
    await publisher.stop()
    return {
        "tasks_per_s": round(tasks / elapsed, 1),
        "hop_p50_ms": round(_percentile(hop_latency, 0.5) * 1e3, 2),
        "hop_p99_ms": round(_percentile(hop_latency, 0.99) * 1e3, 2),
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


async def run(bootstrap: str, endpoint: str, quick: bool, rounds: int) -> dict[str, Any]:
    n_hooks = 5_000 if quick else 20_000
    rounds = 1 if quick else rounds
    burst = 500 if quick else 2_000
    paced = 400 if quick else 1_000
    hooks: dict[str, float] = {}
    for mode in ("off", "on"):
        # A tight loop makes spans faster than any exporter sends them (the SDK
        # then drops them, logging each): the hooks are timed with spans discarded.
        with tracing(mode == "on", None):
            hooks_us_per_hop(1_000)  # warm
            hooks[mode] = round(hooks_us_per_hop(n_hooks), 2)
    _log(f"hooks: off {hooks['off']} µs/hop, on {hooks['on']} µs/hop")
    with tracing(False, endpoint):
        _log("warm-up pipeline")
        await pipeline(bootstrap, 200, None)
    throughput: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    latency: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for round_no in range(rounds):
        for mode in ("off", "on"):
            with tracing(mode == "on", endpoint):
                _log(f"round {round_no + 1}/{rounds}, tracing {mode}: burst of {burst}, paced")
                throughput[mode].append(await pipeline(bootstrap, burst, None))
                latency[mode].append(await pipeline(bootstrap, paced, 200.0))
    summary: dict[str, Any] = {}
    for mode in ("off", "on"):
        summary[mode] = {
            "tasks_per_s": _median(throughput[mode], "tasks_per_s"),
            "hop_p50_ms": _median(latency[mode], "hop_p50_ms"),
            "hop_p99_ms": _median(latency[mode], "hop_p99_ms"),
        }
    off, on = summary["off"], summary["on"]
    summary["throughput_cost"] = round(1 - on["tasks_per_s"] / off["tasks_per_s"], 3)
    summary["hop_p99_cost"] = round(on["hop_p99_ms"] / off["hop_p99_ms"] - 1, 3)
    summary["meets_10pct_goal"] = (
        summary["throughput_cost"] <= 0.10 and summary["hop_p99_cost"] <= 0.10
    )
    return {
        "machine": machine_info(),
        "hooks_us_per_hop": hooks,
        "pipeline": summary,
        "rounds": {"throughput": throughput, "latency": latency},
        "settings": {"hops": HOPS, "burst_tasks": burst, "paced_tasks": paced, "paced_rate": 200},
    }


OTEL_ON = {
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_TRACES_SAMPLER": "always_on",
}


def services(bootstrap: str, endpoint: str, tasks: int, run_dir: Path) -> dict[str, Any]:
    """bench/pipeline.py's run of every service, sim latency 0, tracing off then on."""
    rows = {}
    for mode in ("off", "on"):
        for name in (*OTEL_ON, "OTEL_EXPORTER_OTLP_ENDPOINT"):
            os.environ.pop(name, None)
        if mode == "on":
            os.environ.update(OTEL_ON, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
        _log(f"services, tracing {mode}: {tasks} tasks, sim latency 0")
        rows[mode] = asyncio.run(
            services_pipeline.one_run(bootstrap, "fixed:0", tasks, run_dir / mode)
        )
    for name in (*OTEL_ON, "OTEL_EXPORTER_OTLP_ENDPOINT"):
        os.environ.pop(name, None)
    off, on = rows["off"], rows["on"]
    rows["throughput_cost"] = round(1 - on["tasks_per_s"] / off["tasks_per_s"], 3)
    rows["p99_cost"] = round(on["p99_s"] / off["p99_s"] - 1, 3)
    return rows


def _table(doc: dict[str, Any], kafka_version: str) -> str:
    m, p, h = doc["machine"], doc["pipeline"], doc["hooks_us_per_hop"]
    lines = [
        f"{describe(m)} (load {m['load_avg_1m']}), aiokafka {m['libraries']['aiokafka']}, "
        f"OpenTelemetry {otel_version}",
        "",
        "                                      tracing off   tracing on (always_on, OTLP/HTTP)",
        f"hooks alone, µs per hop             {h['off']:>12}   {h['on']:>12} (spans discarded)",
        f"transport, 3 no-op hops: tasks/s    {p['off']['tasks_per_s']:>12}   "
        f"{p['on']['tasks_per_s']:>12}",
        f"transport hop p50 ms (200 tasks/s)  {p['off']['hop_p50_ms']:>12}   "
        f"{p['on']['hop_p50_ms']:>12}",
        f"transport hop p99 ms (200 tasks/s)  {p['off']['hop_p99_ms']:>12}   "
        f"{p['on']['hop_p99_ms']:>12}",
        f"  cost: throughput {p['throughput_cost']:.1%}, hop p99 {p['hop_p99_cost']:+.1%}",
    ]
    team = doc.get("services")
    if team:
        lines += [
            f"services, sim latency 0: tasks/s    {team['off']['tasks_per_s']:>12}   "
            f"{team['on']['tasks_per_s']:>12}",
            f"services end-to-end p50 s           {team['off']['p50_s']:>12}   "
            f"{team['on']['p50_s']:>12}",
            f"services end-to-end p99 s           {team['off']['p99_s']:>12}   "
            f"{team['on']['p99_s']:>12}",
            f"  cost: throughput {team['throughput_cost']:.1%}, p99 {team['p99_cost']:+.1%}",
        ]
    lines.append(f"spans the receiver took: {doc['receiver_spans']}")
    return "\n".join(lines)


def _receiver() -> tuple[subprocess.Popen[str], str]:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.otlp_receiver"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--quick", action="store_true", help="one short round, no services run")
    parser.add_argument("--rounds", type=int, default=3, help="transport rounds per mode")
    parser.add_argument("--tasks", type=int, default=100, help="tasks for the services run")
    args = parser.parse_args()
    bootstrap = os.environ.get("SYNOD_BOOTSTRAP")
    receiver, endpoint = _receiver()
    with tempfile.TemporaryDirectory(prefix="synod-bench-") as tmp:
        info = None
        if not bootstrap:
            info = localkafka.start(Path(tmp) / "kafka")
            bootstrap = info.bootstrap
        try:
            doc = asyncio.run(run(bootstrap, endpoint, args.quick, args.rounds))
            if not args.quick:
                doc["services"] = services(bootstrap, endpoint, args.tasks, Path(tmp))
        finally:
            if info is not None:
                localkafka.stop(Path(tmp) / "kafka")
            receiver.terminate()
            _, err = receiver.communicate(timeout=10)
    doc["receiver_spans"] = int(err.rsplit(":", 1)[1]) if "spans received" in err else None
    version = info.version if info else "external"
    doc["kafka"] = version
    doc["machine"]["kafka"] = version
    print(json.dumps(doc, indent=2) if args.json else _table(doc, version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
