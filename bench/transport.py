"""Transport benchmark on a real local Kafka broker.

1. Throughput with slow handlers: 1,000 messages over 200 keys, each handler
   sleeping 200 ms. (a) KeyOrderedConsumer with concurrency 200; (b) a plain
   sequential aiokafka consumer. (b) is measured on its first 50 messages by
   default (its rate is steady; 1,000 would take over 3 minutes): --full runs
   all of them.
2. Hop latency, produce -> handler, with a no-op handler: our transport
   (Publisher + KeyOrderedConsumer) against raw aiokafka produce -> getmany on
   the same broker, at 100 and 1,000 messages per second. The target compares
   like with like (both read_uncommitted, aiokafka's default); our default,
   read_committed, is shown beside it.
3. Peak RSS of this process (consumer and producer share it).

Prints a table, or with --json one JSON document. Asserts nothing about time.

    .venv/bin/python bench/transport.py [--json] [--full]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from machine import describe, machine_info  # bench/machine.py; bench/ is not a package
from synod.dev import localkafka
from synod.transport import ConsumerConfig, KeyOrderedConsumer, Publisher, RawRecord, Received
from synod.wire import Envelope, Sender, StepCompleted

SENDER = Sender(role="planner", instance="bench")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _create(bootstrap: str, partitions: int) -> str:
    name = f"bench.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def _fill(bootstrap: str, topic: str, n: int, keys: int) -> None:
    async with Publisher(bootstrap) as publisher:
        await asyncio.gather(
            *(
                publisher.publish(
                    topic,
                    Envelope.new(
                        StepCompleted(step_id="s", output=str(i)),
                        sender=SENDER,
                        task_id=f"task-{i % keys}",
                    ),
                )
                for i in range(n)
            )
        )


async def _no_dead_letters(record: RawRecord, reason: str, message: str, cls: str) -> None:
    raise RuntimeError(f"unexpected dead letter: {reason}")


# ---------------------------------------------------------------- throughput


async def throughput_ours(
    bootstrap: str, n: int, keys: int, latency_s: float, conc: int
) -> dict[str, Any]:
    topic = await _create(bootstrap, 12)
    await _fill(bootstrap, topic, n, keys)
    done = 0
    first = last = 0.0
    finished = asyncio.Event()

    async def handler(msg: Received) -> None:
        nonlocal done, first, last
        if not first:
            first = time.perf_counter()
        await asyncio.sleep(latency_s)
        done += 1
        last = time.perf_counter()
        if done >= n:
            finished.set()

    consumer = KeyOrderedConsumer(
        bootstrap,
        f"bench-{uuid.uuid4().hex[:8]}",
        [topic],
        handler,
        dead_letter=_no_dead_letters,
        config=ConsumerConfig(concurrency=conc),
    )
    await consumer.start()
    try:
        await asyncio.wait_for(finished.wait(), timeout=120)
    finally:
        await consumer.stop()
    elapsed = last - first
    return {
        "messages": n,
        "elapsed_s": round(elapsed, 3),
        "rate_per_s": round(n / elapsed, 1),
        "ideal_rate_per_s": round(conc / latency_s, 1),
        "max_in_flight": consumer.stats.max_in_flight,
    }


async def throughput_sequential(
    bootstrap: str, n: int, keys: int, latency_s: float, measure: int
) -> dict[str, Any]:
    topic = await _create(bootstrap, 12)
    await _fill(bootstrap, topic, n, keys)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    done = 0
    first = 0.0
    try:
        async for record in consumer:
            if not first:
                first = time.perf_counter()
            await asyncio.sleep(latency_s)  # the handler, awaited in the loop
            await consumer.commit(
                {TopicPartition(record.topic, record.partition): record.offset + 1}
            )
            done += 1
            if done >= measure:
                break
    finally:
        await consumer.stop()
    elapsed = time.perf_counter() - first
    return {
        "messages": done,
        "elapsed_s": round(elapsed, 3),
        "rate_per_s": round(done / elapsed, 2),
    }


# ---------------------------------------------------------------- latency


WARMUP_S = 1.0  # latencies of messages sent in the first second are not counted


async def _paced(rate: float, seconds: float, send: Any) -> int:
    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)
    return n


async def latency_ours(
    bootstrap: str, rate: float, seconds: float, isolation: str
) -> list[tuple[int, float]]:
    topic = await _create(bootstrap, 12)
    lat: list[tuple[int, float]] = []
    sent_at: dict[str, float] = {}

    async def handler(msg: Received) -> None:
        seq = int(msg.envelope.body.output)
        lat.append((seq, time.perf_counter() - sent_at[msg.envelope.message_id]))

    consumer = KeyOrderedConsumer(
        bootstrap,
        f"bench-{uuid.uuid4().hex[:8]}",
        [topic],
        handler,
        dead_letter=_no_dead_letters,
        config=ConsumerConfig(concurrency=200, isolation_level=isolation),
    )
    await consumer.start()
    await _wait_assigned(lambda: bool(consumer.assigned))
    async with Publisher(bootstrap) as publisher:

        async def send(i: int) -> None:
            env = Envelope.new(
                StepCompleted(step_id="s", output=str(i)), sender=SENDER, task_id=f"task-{i % 100}"
            )
            sent_at[env.message_id] = time.perf_counter()
            await publisher._producer.send(  # not awaiting delivery: pacing, like the raw run
                topic, publisher.codec.encode(env), key=env.key
            )

        n = await _paced(rate, seconds, send)
        await _wait_assigned(lambda: len(lat) >= n, limit_s=30)
    await consumer.stop()
    return lat


async def latency_raw(bootstrap: str, rate: float, seconds: float) -> list[tuple[int, float]]:
    topic = await _create(bootstrap, 12)
    lat: list[tuple[int, float]] = []
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
    )
    await consumer.start()
    await _wait_assigned(lambda: bool(consumer.assignment()))
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for r in records:
                    seq, sent = r.value.decode().split()
                    lat.append((int(seq), now - float(sent)))

    reader = asyncio.create_task(consume())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()

    async def send(i: int) -> None:
        value = f"{i} {time.perf_counter()}".encode()
        await producer.send(topic, value, key=f"task-{i % 100}".encode())

    n = await _paced(rate, seconds, send)
    await _wait_assigned(lambda: len(lat) >= n, limit_s=30)
    stop.set()
    await reader
    await producer.stop()
    await consumer.stop()
    return lat


async def _wait_assigned(predicate: Any, limit_s: float = 30) -> None:
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - polled state, nothing to await
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------- main


async def run(bootstrap: str, full: bool) -> dict[str, Any]:
    _log("warm-up: a short run so JIT and connections are warm on a fresh broker")
    await throughput_ours(bootstrap, 400, 200, 0.05, 200)
    _log("throughput: ours (1,000 messages, 200 keys, 200 ms handlers, concurrency 200) x3")
    runs = [await throughput_ours(bootstrap, 1_000, 200, 0.2, 200) for _ in range(3)]
    ours = sorted(runs, key=lambda r: r["rate_per_s"])[1]  # the median run
    ours["runs_rate_per_s"] = [r["rate_per_s"] for r in runs]
    measure = 1_000 if full else 50
    _log(f"throughput: sequential aiokafka ({measure} messages measured)")
    seq = await throughput_sequential(bootstrap, 1_000, 200, 0.2, measure)
    latency: dict[str, Any] = {}
    for rate in (100, 1_000):
        _log(f"latency at {rate}/s: raw aiokafka, ours, ours with read_committed")
        skip = int(rate * WARMUP_S)
        pairs_by_run = {
            "raw": await latency_raw(bootstrap, rate, 6.0),
            "ours": await latency_ours(bootstrap, rate, 6.0, "read_uncommitted"),
            "ours_rc": await latency_ours(bootstrap, rate, 6.0, "read_committed"),
        }
        row: dict[str, Any] = {}
        for name, pairs in pairs_by_run.items():
            values = [x for i, x in pairs if i >= skip]
            row[f"{name}_p50_ms"] = round(_percentile(values, 0.5) * 1e3, 2)
            row[f"{name}_p99_ms"] = round(_percentile(values, 0.99) * 1e3, 2)
        row["target_p99_ms"] = round(1.5 * row["raw_p99_ms"] + 1, 2)
        row["meets_target"] = row["ours_p99_ms"] <= row["target_p99_ms"]
        latency[str(rate)] = row
    ratio = ours["rate_per_s"] / seq["rate_per_s"]
    return {
        "throughput": {
            "ours": ours,
            "sequential": seq,
            "ratio": round(ratio, 1),
            "meets_ratio_target": ratio >= 100,
            "share_of_ideal": round(ours["rate_per_s"] / ours["ideal_rate_per_s"], 3),
            "meets_ideal_target": ours["rate_per_s"] >= 0.9 * ours["ideal_rate_per_s"],
        },
        "latency": latency,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _table(doc: dict[str, Any], kafka_version: str) -> str:
    t = doc["throughput"]
    m = doc["machine"]
    lines = [
        f"{describe(m)}, aiokafka {m['libraries']['aiokafka']}",
        "",
        "throughput, 200 ms handlers            msgs/s",
        f"  (a) ours, concurrency 200       {t['ours']['rate_per_s']:>10}   "
        f"({t['share_of_ideal']:.1%} of ideal {t['ours']['ideal_rate_per_s']}; "
        f"peak in flight {t['ours']['max_in_flight']})",
        f"  (b) sequential aiokafka         {t['sequential']['rate_per_s']:>10}   "
        f"({t['sequential']['messages']} messages measured)",
        f"  a/b                             {t['ratio']:>10}   "
        f"target >= 100: {'PASS' if t['meets_ratio_target'] else 'MISS'}; "
        f">= 90% of ideal: {'PASS' if t['meets_ideal_target'] else 'MISS'}",
        "",
        "hop latency, no-op handler (ms)   raw         ours        ours, read_committed",
        "                                  p50   p99   p50   p99   p50   p99   target p99",
    ]
    for rate, row in doc["latency"].items():
        lines.append(
            f"  {rate:>5} msg/s                 "
            + " ".join(
                f"{row[f'{n}_p50_ms']:>5.1f} {row[f'{n}_p99_ms']:>5.1f}"
                for n in ("raw", "ours", "ours_rc")
            )
            + f"   {row['target_p99_ms']:>6.1f} {'PASS' if row['meets_target'] else 'MISS'}"
        )
    lines += ["", f"peak RSS of the process (consumer + producer): {doc['peak_rss_mib']} MiB"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--full", action="store_true", help="run all 1,000 sequential messages")
    args = parser.parse_args()
    bootstrap = os.environ.get("SYNOD_BOOTSTRAP")
    with tempfile.TemporaryDirectory(prefix="synod-bench-") as tmp:
        info = None
        if not bootstrap:
            info = localkafka.start(Path(tmp))
            bootstrap = info.bootstrap
        try:
            doc = asyncio.run(run(bootstrap, args.full))
        finally:
            if info is not None:
                localkafka.stop(Path(tmp))
    version = info.version if info else "external"
    doc["kafka"] = version
    doc["machine"] = machine_info(kafka=version)
    print(json.dumps(doc, indent=2) if args.json else _table(doc, version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
