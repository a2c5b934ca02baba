"""Recovery against history: how long the consensus service takes to rebuild a
partition's state, replaying from offset 0 (before) or restoring its latest
snapshot and folding the tail (after), for histories of 10^3 .. 10^5 records.

For each history size N it writes N records to one synod.votes partition (each
proposal: an opening and three votes, so it is decided; the proposals of the
last 100 records get one vote and stay open, as work in flight), then
measures, on the service's own code paths:

- replay: read the partition from its first record and fold every record
  (decode + `PartitionFold.apply`), what an assignment cost before snapshots;
- snapshot: `SnapshotStore.load` + `PartitionFold.from_snapshot` + fold the
  500 records after the snapshot's offset, what it costs now.

Both folds are compared (same open proposals, same decisions) so the numbers
are for equal work. Group join and the first fetch are outside both (the same
for each). Prints a table, or with --json one document. Asserts nothing about
time.

    .venv/bin/python bench/recovery.py [--json] [--sizes 1000,10000,100000]
        [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from synod import __version__ as synod_version
from synod.core.consensus.fold import PartitionFold
from synod.dev import localkafka
from synod.transport.admin import ensure_topics
from synod.transport.snapshots import SnapshotStore
from synod.transport.topics import SNAPSHOTS, VOTES, topic_name
from synod.wire import Candidate, Codec, Envelope, Sender, Vote, VoteRequested

PLANNER = Sender(role="planner", instance="bench")
CONSENSUS = Sender(role="consensus", instance="bench")
VOTERS = ["reviewer-0", "reviewer-1", "reviewer-2", "reviewer-3"]
IN_FLIGHT = 25  # the last 4 * IN_FLIGHT records belong to proposals left open
TAIL = 500  # records after the snapshot's offset


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "synod": synod_version,
    }


def history(n: int) -> list[bytes]:
    """n encoded records: decided proposals, then IN_FLIGHT open ones."""
    codec = Codec()
    t0 = datetime.now(UTC)
    records: list[bytes] = []
    i = 0
    while len(records) < n:
        task = f"t{i:07d}"
        at = t0 + timedelta(milliseconds=i)
        opening = VoteRequested(
            proposal_id=f"{task}/answer",
            candidates=[Candidate(candidate_id="a"), Candidate(candidate_id="b")],
            electorate=VOTERS,
            policy="majority",
            deadline_s=600.0,
        )
        records.append(
            codec.encode(Envelope.new(opening, sender=PLANNER, task_id=task, created_at=at))
        )
        open_at_end = len(records) > n - 4 * IN_FLIGHT
        for voter in VOTERS[: 1 if open_at_end else 3]:
            vote = Vote(
                proposal_id=f"{task}/answer", ballot=1, voter=voter, kind="choice", choice="a"
            )
            records.append(
                codec.encode(
                    Envelope.new(
                        vote,
                        sender=Sender(role="reviewer", instance=voter),
                        task_id=task,
                        created_at=at,
                    )
                )
            )
        i += 1
    return records[:n]


async def produce(bootstrap: str, topic: str, records: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20
    )
    await producer.start()
    try:
        for start in range(0, len(records), 5_000):
            futures = [
                await producer.send(topic, value, key=b"k", partition=0)
                for value in records[start : start + 5_000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def fold_from(
    bootstrap: str, topic: str, start: int, fold: PartitionFold, codec: Codec
) -> tuple[PartitionFold, int]:
    """Fold records [start, end) of partition 0 into `fold`; returns it and the count."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start)
        folded = 0
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=2_000)
            for record in batch.get(tp, []):
                fold.apply(codec.decode(record.value))
                folded += 1
        return fold, folded
    finally:
        await consumer.stop()


async def measure(bootstrap: str, n: int) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await ensure_topics(bootstrap, (VOTES, SNAPSHOTS), prefix=prefix, partitions=1)
    votes, snapshots = topic_name(VOTES, prefix), topic_name(SNAPSHOTS, prefix)
    _log(f"[recovery] writing {n} records")
    records = history(n)
    await produce(bootstrap, votes, records)
    codec = Codec()

    # The state a live service had at the snapshot's offset, written as it would.
    cut = max(0, n - TAIL)
    live = PartitionFold(CONSENSUS)
    for value in records[:cut]:
        live.apply(codec.decode(value))
    store = SnapshotStore(bootstrap, snapshots, f"{prefix}synod.consensus")
    await store.start()
    try:
        size = await store.save(votes, 0, cut, live.to_snapshot())

        _log(f"[recovery] replay of {n} records")
        started = time.perf_counter()
        replayed, replay_count = await fold_from(
            bootstrap, votes, 0, PartitionFold(CONSENSUS), codec
        )
        replay_s = time.perf_counter() - started

        _log("[recovery] snapshot + tail")
        started = time.perf_counter()
        snapshot = await store.load(votes, 0)
        assert snapshot is not None, "the snapshot just written is not there"
        point = store.check(snapshot, 0, n)
        assert point is not None
        restored = PartitionFold.from_snapshot(CONSENSUS, snapshot.payload)
        restore_only_s = time.perf_counter() - started
        restored, tail_count = await fold_from(bootstrap, votes, point.offset, restored, codec)
        snapshot_s = time.perf_counter() - started
    finally:
        await store.stop()
    same = (
        restored.open_proposals == replayed.open_proposals
        and restored.decisions == replayed.decisions
    )
    return {
        "history_records": n,
        "open_proposals": len(replayed.open_proposals),
        "decided_in_memory": len(replayed.decisions),
        "replay_s": round(replay_s, 3),
        "replay_records": replay_count,
        "snapshot_s": round(snapshot_s, 3),
        "snapshot_restore_s": round(restore_only_s, 3),
        "snapshot_tail_records": tail_count,
        "snapshot_bytes": size,
        "same_state": same,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.bootstrap:
        return {"sizes": [await measure(args.bootstrap, n) for n in sizes]}
    with tempfile.TemporaryDirectory(prefix="synod-bench-recovery-") as tmp:
        info = await asyncio.to_thread(localkafka.start, Path(tmp))
        try:
            results = [await measure(info.bootstrap, n) for n in sizes]
        finally:
            await asyncio.to_thread(localkafka.stop, Path(tmp))
        return {"kafka": info.version, "sizes": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--sizes", default="1000,10000,100000", help="history sizes, comma-separated"
    )
    parser.add_argument("--bootstrap", default=None, help="a broker to use (default: start one)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes takes integers, e.g. 1000,10000")
    if any(s < 100 for s in sizes):
        parser.error("--sizes: each history needs at least 100 records")
    doc = {"bench": "recovery", "machine": machine_info(), **asyncio.run(run(args))}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    m = doc["machine"]
    print(
        f"machine: {m['cores']} cores, {m['cpu']}; Python {m['python']}; "
        f"Kafka {doc.get('kafka', '?')}"
    )
    print(
        f"{'history':>9} {'open':>5} {'replay s':>9} {'snapshot+tail s':>16} "
        f"{'(restore s)':>11} {'tail':>5} {'snapshot B':>11} {'same':>5}"
    )
    for r in doc["sizes"]:
        print(
            f"{r['history_records']:>9} {r['open_proposals']:>5} {r['replay_s']:>9.3f} "
            f"{r['snapshot_s']:>16.3f} {r['snapshot_restore_s']:>11.3f} "
            f"{r['snapshot_tail_records']:>5} {r['snapshot_bytes']:>11} {r['same_state']!s:>5}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
