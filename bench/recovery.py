"""Recovery against history: how long the consensus service takes to rebuild a
partition's state, replaying from offset 0 (before) or restoring its latest
snapshot and folding the tail (after), and how long the gateway's view takes to
start, for histories of 10^3 .. 10^6 records.

For each history size N it writes N records to one synod.votes partition (each
proposal: an opening and three votes, so it is decided; the proposals of the
last 100 records get one vote and stay open, as work in flight), then
measures, on the service's own code paths:

- replay: read the partition from its first record and fold every record
  (decode + `PartitionFold.apply`), what an assignment cost before snapshots;
  only up to --replay-max records (a replay of 10^6 takes a quarter of an hour
  here), beyond that the row says `-`;
- snapshot: `SnapshotStore.load` + `PartitionFold.from_snapshot` + fold the
  500 records after the snapshot's offset, what it costs now;
- gateway: the same N records on a synod.task-events partition, all but the
  last 500 timestamped two days ago; a `ViewConsumer` with a one-hour window
  is started and timed until it has caught up (before the window: from the
  beginning, measured only up to --replay-max too).

The snapshot is the state a live fold had at the snapshot's offset: decided ids
from the generator's own bookkeeping (folding 10^6 records just to write it
would take as long as the replay), the open proposals folded from their
records. The restored-and-tailed fold is compared with what the history says
(same open proposals, same decided ids) and, where the replay ran, with the
replay. Generating and writing 10^6 records takes ~1-2 minutes here. Prints a
table, or with --json one document. Asserts nothing about time.

    .venv/bin/python bench/recovery.py [--json] [--sizes 1000,100000,1000000]
        [--replay-max 100000] [--bootstrap HOST:PORT]
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from synod import __version__ as synod_version
from synod.core.consensus import wiremap
from synod.core.consensus.fold import PartitionFold
from synod.core.snapshot import pack_records
from synod.dev import localkafka
from synod.roles.gateway.view import TaskFeed, ViewConsumer
from synod.roles.planner.service import Planner
from synod.roles.planner.snapshots import SNAPSHOT_MAGIC, PlannerSnapshots
from synod.transport.admin import ensure_topics
from synod.transport.authorship import Authorship
from synod.transport.snapshots import SnapshotStore
from synod.transport.topics import RESULTS, SNAPSHOTS, TASK_EVENTS, VOTES, topic_name
from synod.wire import (
    Candidate,
    Codec,
    Decision,
    Envelope,
    PlanProposed,
    PlanStep,
    Sender,
    StepCompleted,
    StepRequested,
    TaskCompleted,
    TaskSubmitted,
    Vote,
    VoteRequested,
)

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


@dataclass
class History:
    records: list[bytes]
    # Per proposal: id, index of its last record, log time of that record, decided.
    proposals: list[tuple[str, int, float, bool]]


def history(n: int) -> History:
    """n encoded records: decided proposals, then IN_FLIGHT open ones."""
    codec = Codec()
    t0 = datetime.now(UTC) - timedelta(seconds=n / 1000)
    records: list[bytes] = []
    proposals: list[tuple[str, int, float, bool]] = []
    i = 0
    while len(records) < n:
        task = f"{i:032x}"  # the length of a real task id (a uuid's hex)
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
        last = min(len(records), n) - 1
        decided = not open_at_end and len(records) <= n
        proposals.append((f"{task}/answer", last, wiremap.epoch_seconds(at), decided))
        i += 1
    return History(records[:n], proposals)


def live_fold(h: History, cut: int, codec: Codec) -> PartitionFold:
    """The fold a live service had after records [0, cut): decided ids set directly
    (they are all a decided proposal leaves in a fold), the rest folded."""
    fold = PartitionFold(CONSENSUS)
    first_open = cut
    for pid, last, at, decided in h.proposals:
        if decided and last < cut:
            fold._decided[pid] = at
        elif last >= cut or not decided:
            first_open = min(first_open, last - 3)
    for value in h.records[max(0, first_open) : cut]:
        fold.apply(codec.decode(value))
    return fold


async def produce(bootstrap: str, topic: str, records: list[bytes], old_until: int = 0) -> None:
    """Write `records` to partition 0; the first `old_until` stamped two days ago."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20
    )
    old_ms = int((time.time() - 2 * 86_400) * 1000)
    await producer.start()
    try:
        for start in range(0, len(records), 5_000):
            futures = [
                await producer.send(
                    topic,
                    value,
                    key=b"k",
                    partition=0,
                    timestamp_ms=old_ms if start + j < old_until else None,
                )
                for j, value in enumerate(records[start : start + 5_000])
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def view_start(bootstrap: str, topic: str, results: str, window_s: float | None) -> float:
    """Seconds from starting a gateway view until it has caught up."""
    view = ViewConsumer(
        bootstrap,
        TaskFeed(),
        task_events_topic=topic,
        results_topic=results,
        window_s=window_s,
        causal_timeout_s=None,
    )
    started = time.perf_counter()
    await view.start()
    try:
        for _ in range(12_000):  # ten minutes at most
            if view.caught_up:
                return time.perf_counter() - started
            await asyncio.sleep(0.05)
        raise TimeoutError("the gateway view did not catch up within ten minutes")
    finally:
        await view.stop()


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


async def measure(bootstrap: str, n: int, replay_max: int) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    specs = (VOTES, SNAPSHOTS, TASK_EVENTS, RESULTS)
    await ensure_topics(bootstrap, specs, prefix=prefix, partitions=1)
    votes, snapshots = topic_name(VOTES, prefix), topic_name(SNAPSHOTS, prefix)
    events, results = topic_name(TASK_EVENTS, prefix), topic_name(RESULTS, prefix)
    _log(f"[recovery] generating {n} records")
    started = time.perf_counter()
    h = history(n)
    generate_s = time.perf_counter() - started
    _log(f"[recovery] writing {n} records twice ({generate_s:.1f} s to generate)")
    started = time.perf_counter()
    await produce(bootstrap, votes, h.records)
    await produce(bootstrap, events, h.records, old_until=n - TAIL)
    write_s = time.perf_counter() - started
    codec = Codec()
    replay = n <= replay_max

    # The state a live service had at the snapshot's offset, written as it would.
    cut = max(0, n - TAIL)
    store = SnapshotStore(bootstrap, snapshots, f"{prefix}synod.consensus")
    await store.start()
    try:
        payload = live_fold(h, cut, codec).to_snapshot()
        size = await store.save(votes, 0, cut, payload)

        replayed: PartitionFold | None = None
        replay_s: float | None = None
        if replay:
            _log(f"[recovery] replay of {n} records")
            started = time.perf_counter()
            replayed, _ = await fold_from(bootstrap, votes, 0, PartitionFold(CONSENSUS), codec)
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

    _log("[recovery] gateway view start-up")
    gateway_window_s = await view_start(bootstrap, events, results, 3_600.0)
    gateway_full_s = await view_start(bootstrap, events, results, None) if replay else None

    _log("[recovery] planner rebuild")
    planner = await measure_planner(bootstrap, *task_history(n), replay)

    expected_open = tuple(pid for pid, _, _, decided in h.proposals if not decided)
    expected_decided = tuple(pid for pid, _, _, decided in h.proposals if decided)
    same = restored.open_proposals == expected_open and restored.decided == expected_decided
    if replayed is not None:
        same = same and (
            replayed.open_proposals == restored.open_proposals
            and replayed.decided == restored.decided
        )
    return {
        "history_records": n,
        "generate_s": round(generate_s, 1),
        "write_s": round(write_s, 1),
        "open_proposals": len(restored.open_proposals),
        "decided_in_memory": len(restored.decided),
        "replay_s": None if replay_s is None else round(replay_s, 3),
        "snapshot_s": round(snapshot_s, 3),
        "snapshot_restore_s": round(restore_only_s, 3),
        "snapshot_tail_records": tail_count,
        "snapshot_bytes": size,
        "gateway_window_s": round(gateway_window_s, 3),
        "gateway_full_s": None if gateway_full_s is None else round(gateway_full_s, 3),
        "same_state": same,
        "planner": planner,
    }


GATEWAY = Sender(role="gateway", instance="bench")
WORKER = Sender(role="researcher", instance="bench")
PLANNER_IN_FLIGHT = 100  # tasks of the history left unfinished (3 records each)


def task_history(n: int) -> tuple[list[bytes], set[str]]:
    """n task-log records: finished tasks of 7 records (submitted, plan, step
    requested and completed, vote requested, decision, outcome), and just before
    the last TAIL records PLANNER_IN_FLIGHT tasks of 3 (submitted, plan, step
    requested) that stay unfinished; returns the records and those tasks' ids."""
    codec = Codec()
    t0 = datetime.now(UTC) - timedelta(seconds=n / 1000)
    step = PlanStep(step_id="s1", role="researcher", title="look it up")
    bodies_of_a_task: list[tuple[Sender, Any]] = [
        (GATEWAY, TaskSubmitted(goal="answer the question", reviewers=3)),
        (PLANNER, PlanProposed(plan_id="p1", steps=[step])),
        (PLANNER, StepRequested(step_id="s1", plan_id="p1", role="researcher")),
        (WORKER, StepCompleted(step_id="s1", output="the answer, at some length " * 8)),
    ]
    records: list[bytes] = []
    unfinished: set[str] = set()
    i = 0
    while len(records) < n:
        task = f"{i:032x}"
        at = t0 + timedelta(milliseconds=i)
        in_flight = n - TAIL - 3 * PLANNER_IN_FLIGHT <= len(records) < n - TAIL
        bodies = list(bodies_of_a_task[:3] if in_flight else bodies_of_a_task)
        if not in_flight:
            pid = f"{task}/answer"
            bodies += [
                (
                    PLANNER,
                    VoteRequested(
                        proposal_id=pid,
                        candidates=[Candidate(candidate_id="a")],
                        electorate=VOTERS[:3],
                        policy="majority",
                    ),
                ),
                (
                    CONSENSUS,
                    Decision(
                        decision_id=f"{pid}/d",
                        proposal_id=pid,
                        ballot=1,
                        outcome="a",
                        quorum=2,
                        votes_counted=3,
                    ),
                ),
                (PLANNER, TaskCompleted(result="the answer", plan_id="p1", steps_completed=1)),
            ]
        bodies = bodies[: n - len(records)]  # the history ends mid-task
        if len(bodies) < 7:
            unfinished.add(task)
        for k, (sender, body) in enumerate(bodies):
            envelope = Envelope.new(
                body,
                sender=sender,
                task_id=task,
                created_at=at,
                message_id=f"{task}-{k}",
            )
            records.append(codec.encode(envelope))
        i += 1
    return records[:n], unfinished


def bench_planner(bootstrap: str, prefix: str) -> Planner:
    """A planner on the bench's topics: its rebuild and snapshot path, no consumer."""
    kafka = SimpleNamespace(bootstrap=bootstrap, topic_prefix=prefix, max_poll_interval_ms=600_000)
    ctx: Any = SimpleNamespace(
        kafka=kafka,
        topic=lambda spec: topic_name(spec, prefix),
        service=SimpleNamespace(causal_clocks=False),
        instance="planner-bench",
        role="planner",
        sender=PLANNER,
        authorship=Authorship(None, None),  # unsigned, as a local run without --secure
    )
    planner = Planner(ctx, llm=None)  # type: ignore[arg-type]
    planner.snapshots = PlannerSnapshots(planner)
    return planner


async def measure_planner(
    bootstrap: str, records: list[bytes], unfinished: set[str], replay: bool
) -> dict[str, Any]:
    n = len(records)
    prefix = f"benchp{uuid.uuid4().hex[:6]}."
    await ensure_topics(bootstrap, (TASK_EVENTS, SNAPSHOTS), prefix=prefix, partitions=1)
    events = topic_name(TASK_EVENTS, prefix)
    await produce(bootstrap, events, records)
    tp = TopicPartition(events, 0)
    codec = Codec()
    # The snapshot a live planner writes at n - TAIL: the records of the tasks
    # unfinished then (the finished ones left its memory).
    cut = max(0, n - TAIL)
    window = records[max(0, cut - 3 * PLANNER_IN_FLIGHT - 7) : cut]  # where they are
    kept = [v for v in window if codec.decode(v).task_id in unfinished]
    live = bench_planner(bootstrap, prefix)
    assert live.snapshots is not None
    await live.snapshots.store.start()
    try:
        size = await live.snapshots.store.save(events, 0, cut, SNAPSHOT_MAGIC + pack_records(kept))
    finally:
        await live.snapshots.store.stop()

    replay_s: float | None = None
    replayed_open: set[str] | None = None
    if replay:
        before = bench_planner(bootstrap, prefix)
        before.snapshots = None  # what the planner did before snapshots
        started = time.perf_counter()
        await before.rebuild([tp])
        replay_s = time.perf_counter() - started
        replayed_open = {t for t, m in before.tasks.items() if m.outcome is None}

    after = bench_planner(bootstrap, prefix)
    started = time.perf_counter()
    await after.rebuild([tp])
    snapshot_s = time.perf_counter() - started
    restored_open = {t for t, m in after.tasks.items() if m.outcome is None}
    same = restored_open == unfinished and (replayed_open is None or replayed_open == unfinished)
    return {
        "replay_s": None if replay_s is None else round(replay_s, 3),
        "snapshot_s": round(snapshot_s, 3),
        "snapshot_bytes": size,
        "tasks_in_memory": len(after.tasks),
        "unfinished": len(unfinished),
        "same_state": same,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.bootstrap:
        return {"sizes": [await measure(args.bootstrap, n, args.replay_max) for n in sizes]}
    with tempfile.TemporaryDirectory(prefix="synod-bench-recovery-") as tmp:
        info = await asyncio.to_thread(localkafka.start, Path(tmp))
        try:
            results = [await measure(info.bootstrap, n, args.replay_max) for n in sizes]
        finally:
            await asyncio.to_thread(localkafka.stop, Path(tmp))
        return {"kafka": info.version, "sizes": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--sizes", default="1000,100000,1000000", help="history sizes, comma-separated"
    )
    parser.add_argument(
        "--replay-max",
        type=int,
        default=100_000,
        help="replay from offset 0 (the 'before') only up to this many records",
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
        f"{'(restore s)':>11} {'snapshot B':>11} {'gw full s':>10} {'gw window s':>12} "
        f"{'same':>5} {'gen+write s':>12} {'planner replay s':>17} {'planner snap+tail s':>20}"
    )

    def cell(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.3f}"

    for r in doc["sizes"]:
        print(
            f"{r['history_records']:>9} {r['open_proposals']:>5} {cell(r['replay_s'], 9)} "
            f"{r['snapshot_s']:>16.3f} {r['snapshot_restore_s']:>11.3f} "
            f"{r['snapshot_bytes']:>11} {cell(r['gateway_full_s'], 10)} "
            f"{r['gateway_window_s']:>12.3f} {r['same_state']!s:>5} "
            f"{r['generate_s'] + r['write_s']:>12.1f} {cell(r['planner']['replay_s'], 17)} "
            f"{r['planner']['snapshot_s']:>20.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
