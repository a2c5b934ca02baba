"""The transport on a real broker: order under concurrency, crash and rebalance
failover without double effects, poison messages, topic creation."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from tests.polling import wait_until_async

from synod.transport import (
    ConsumerConfig,
    DeadLetterPublisher,
    KeyOrderedConsumer,
    Publisher,
    RawRecord,
    Received,
)
from synod.transport.admin import ensure_topics
from synod.transport.offsets import decode_finished
from synod.transport.topics import CATALOGUE
from synod.wire import Codec, DeadLetter, Envelope, Sender, StepCompleted

NewTopic = Callable[..., Coroutine[Any, Any, str]]
SENDER = Sender(role="planner", instance="test")
WORKER = Path(__file__).with_name("transport_worker.py")


async def _produce(bootstrap: str, topic: str, n: int, keys: int) -> dict[tuple[int, int], int]:
    """n messages round-robin over `keys` task ids; returns (partition, offset) -> seq."""
    placed: dict[tuple[int, int], int] = {}
    async with Publisher(bootstrap) as publisher:
        futures = []
        for seq in range(n):
            env = Envelope.new(
                StepCompleted(step_id="s", output=str(seq)),
                sender=SENDER,
                task_id=f"task-{seq % keys}",
            )
            futures.append((seq, publisher.publish(topic, env)))
        for seq, fut in futures:
            meta = await fut
            placed[(meta.partition, meta.offset)] = seq
    return placed


async def _nothing_dead(record: RawRecord, reason: str, message: str, cls: str) -> None:
    raise AssertionError(f"unexpected dead letter: {reason} {message}")


async def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        got = await admin.list_consumer_group_offsets(
            group, partitions=[TopicPartition(topic, p) for p in range(partitions)]
        )
    finally:
        await admin.close()
    return {tp.partition: om for tp, om in got.items()}


async def test_key_order_holds_with_many_handlers_in_flight(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    placed = await _produce(bootstrap, topic, 1_000, keys=50)
    rng = random.Random(1)
    handled: dict[str, list[tuple[int, int]]] = {}
    running = peak = 0

    async def handler(msg: Received) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(rng.random() * 0.04)
        running -= 1
        handled.setdefault(msg.envelope.task_id or "", []).append(
            (msg.record.partition, msg.record.offset)
        )

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = KeyOrderedConsumer(
        bootstrap,
        group,
        [topic],
        handler,
        dead_letter=_nothing_dead,
        config=ConsumerConfig(concurrency=64),
    )
    await consumer.start()
    try:
        await wait_until_async(
            lambda: sum(map(len, handled.values())) >= 1_000, timeout_s=60, what="all handled"
        )
    finally:
        await consumer.stop()

    assert sum(map(len, handled.values())) == 1_000
    assert len(handled) == 50
    for key, positions in handled.items():
        assert len({p for p, _ in positions}) == 1, f"{key} spans partitions"
        assert positions == sorted(positions), f"{key} handled out of offset order"
    assert peak >= 20, f"only {peak} handlers ran at once"
    # A clean stop commits everything: a restart would redo nothing.
    committed = await _committed(bootstrap, group, topic, 3)
    ends = {p: max(o for (pp, o) in placed if pp == p) + 1 for p in range(3)}
    assert {p: om.offset for p, om in committed.items()} == ends


def _read_log(path: Path) -> list[tuple[int, int, int, str, int]]:
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[1] != "dead":
            pid, partition, offset, task, seq = parts
            rows.append((int(pid), int(partition), int(offset), task, int(seq)))
    return rows


def _worker(bootstrap: str, group: str, topic: str, out: str, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            "--bootstrap",
            bootstrap,
            "--group",
            group,
            "--topic",
            topic,
            "--out-topic",
            out,
            "--log",
            str(log),
            "--concurrency",
            "50",
            "--slow-every",
            "40",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _effect_ids(bootstrap: str, topic: str, at_least: int) -> list[str]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    codec, ids = Codec(), []
    try:
        async with asyncio.timeout(30):
            while len(set(ids)) < at_least:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    ids.extend(codec.decode(r.value).message_id for r in records)
            # Drain anything still arriving.
            for records in (await consumer.getmany(timeout_ms=1_000)).values():
                ids.extend(codec.decode(r.value).message_id for r in records)
    finally:
        await consumer.stop()
    return ids


async def test_sigkill_mid_batch_then_takeover_skips_finished_work(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic, out = await new_topic(partitions=3), await new_topic(partitions=3)
    placed = await _produce(bootstrap, topic, 600, keys=60)
    group = f"g-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "handled.log"

    first = _worker(bootstrap, group, topic, out, log)
    try:
        # Kill it once its commits show work finished beyond a slow message.
        async with asyncio.timeout(60):
            while True:
                committed = await _committed(bootstrap, group, topic, 3)
                finished = sum(
                    len(decode_finished(om.offset, om.metadata)) for om in committed.values()
                )
                if finished >= 20 and len(_read_log(log)) >= 150:
                    break
                await asyncio.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    killed_at = _read_log(log)

    # What the dead worker committed is all a new owner knows.
    committed = await _committed(bootstrap, group, topic, 3)
    start = {p: om.offset for p, om in committed.items()}
    skip = {p: decode_finished(om.offset, om.metadata) for p, om in committed.items()}
    assert sum(map(len, skip.values())) > 0, "no finished offsets beyond a commit point"

    second = _worker(bootstrap, group, topic, out, log)
    try:
        await wait_until_async(
            lambda: {(p, o) for _, p, o, _, _ in _read_log(log)} >= set(placed),
            timeout_s=90,
            what="the second worker finished the rest",
        )
    finally:
        second.send_signal(signal.SIGTERM)  # graceful: drain, commit, leave
        second.wait(timeout=30)
    assert second.returncode == 0, second.stderr

    rows = _read_log(log)
    by_second = [(p, o) for pid, p, o, _, _ in rows if pid == second.pid]
    assert set(placed) <= {(p, o) for _, p, o, _, _ in rows}, "a message was lost"
    for p, o in by_second:
        assert o >= start[p], f"{p}/{o} was below the commit and redone"
        assert o not in skip[p], f"{p}/{o} was finished and redone"
    # Redone work can only be what finished after the last commit (at-least-once window).
    window = {(p, o) for _, p, o, _, _ in killed_at if o >= start[p] and o not in skip[p]}
    redone = {(p, o) for _, p, o, _, _ in killed_at} & set(by_second)
    assert redone <= window
    # Effects carry ids derived from their inputs: deduplicated by id, one per message.
    effects = set(await _effect_ids(bootstrap, out, at_least=600))
    assert len(effects) == 600
    # After the graceful stop everything is committed.
    final = await _committed(bootstrap, group, topic, 3)
    ends = {p: max(o for (pp, o) in placed if pp == p) + 1 for p in range(3)}
    assert {p: om.offset for p, om in final.items()} == ends


async def test_a_consumer_joining_mid_run_loses_nothing_and_repeats_nothing(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=6)
    placed = await _produce(bootstrap, topic, 1_000, keys=50)
    group = f"g-{uuid.uuid4().hex[:8]}"
    rng = random.Random(2)
    handled: list[tuple[str, int, int, int]] = []  # (task, partition, offset, consumer)

    def handler_for(index: int) -> Any:
        async def handler(msg: Received) -> None:
            await asyncio.sleep(0.02 + rng.random() * 0.04)
            handled.append(
                (msg.envelope.task_id or "", msg.record.partition, msg.record.offset, index)
            )

        return handler

    # Slow enough (about 200 messages/s) that the join lands mid-run.
    config = ConsumerConfig(concurrency=4, session_timeout_ms=6_000, heartbeat_interval_ms=500)
    consumers = [
        KeyOrderedConsumer(
            bootstrap, group, [topic], handler_for(i), dead_letter=_nothing_dead, config=config
        )
        for i in range(3)
    ]
    await consumers[0].start()
    await consumers[1].start()
    try:
        await wait_until_async(
            lambda: len(handled) >= 300, timeout_s=60, what="progress before the join"
        )
        await consumers[2].start()
        await wait_until_async(
            lambda: len(handled) >= 1_000, timeout_s=90, what="all handled after the join"
        )
        await asyncio.sleep(0.5)  # anything handled twice would show up now
    finally:
        for c in consumers:
            await c.stop()

    positions = [(p, o) for _, p, o, _ in handled]
    assert len(positions) == len(set(positions)) == 1_000, "lost or repeated work"
    assert set(positions) == set(placed)
    assert {i for *_, i in handled} == {0, 1, 2}, "the third consumer got no work"
    per_key: dict[str, list[int]] = {}
    for task, _, offset, _ in handled:
        per_key.setdefault(task, []).append(offset)
    for task, offsets in per_key.items():
        assert offsets == sorted(offsets), f"{task} out of order across the rebalance"


async def test_poison_message_goes_to_the_dead_letter_topic_and_the_partition_goes_on(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic, dlq = await new_topic(partitions=1), await new_topic(partitions=1)
    async with Publisher(bootstrap) as publisher:
        for i in range(5):
            if i == 2:
                await publisher.publish_raw(
                    topic, b"\xc3\x01not-avro", key=b"task-0", headers=[("x-origin", b"test")]
                )
            env = Envelope.new(
                StepCompleted(step_id="s", output=str(i)), sender=SENDER, task_id="task-0"
            )
            await publisher.publish(topic, env)
        handled: list[str] = []

        async def handler(msg: Received) -> None:
            handled.append(msg.envelope.body.output)

        sink = DeadLetterPublisher(publisher, dlq, Sender(role="coder", instance="c-0"))
        consumer = KeyOrderedConsumer(
            bootstrap, f"g-{uuid.uuid4().hex[:8]}", [topic], handler, dead_letter=sink
        )
        await consumer.start()
        try:
            await wait_until_async(
                lambda: len(handled) == 5, timeout_s=30, what="the good messages after the poison"
            )
        finally:
            await consumer.stop()
    assert handled == ["0", "1", "2", "3", "4"]
    assert consumer.stats.dead_lettered == 1

    reader = AIOKafkaConsumer(dlq, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await reader.start()
    try:
        async with asyncio.timeout(20):
            records: list[Any] = []
            while not records:
                for batch in (await reader.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await reader.stop()
    letter = Codec().decode(records[0].value)
    assert isinstance(letter.body, DeadLetter)
    assert letter.body.value == b"\xc3\x01not-avro"
    assert letter.body.reason == "unknown_schema"  # the marker, then 8 bytes no schema has
    assert letter.body.source_topic == topic
    assert letter.body.offset == 2
    assert ("x-origin", b"test") in [(h.key, h.value) for h in letter.body.headers]
    assert letter.task_id == "task-0"


async def test_topics_create_is_idempotent(bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}."
    first = await ensure_topics(bootstrap, prefix=prefix, partitions=2)
    assert [r.action for r in first] == ["created"] * len(CATALOGUE)
    second = await ensure_topics(bootstrap, prefix=prefix, partitions=2)
    assert [r.action for r in second] == ["exists"] * len(CATALOGUE)
    assert all(r.partitions == 2 and r.note == "" for r in second)


@pytest.fixture(autouse=True)
def _no_stray_workers() -> Any:
    yield
    # A failed test must not leave a worker consuming in the background.
    out = subprocess.run(["pgrep", "-f", str(WORKER)], capture_output=True, text=True)
    for pid in out.stdout.split():
        os.kill(int(pid), signal.SIGKILL)


async def test_records_fetched_before_the_lane_opens_are_not_lost(
    bootstrap: str, new_topic: NewTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka may hand out records while the assignment callback still runs."""
    topic = await new_topic(partitions=1)
    await _produce(bootstrap, topic, 20, keys=4)
    slow_read = KeyOrderedConsumer._committed_with_metadata

    async def slow(self: KeyOrderedConsumer, assigned: Any) -> Any:
        # Long enough for the fetch loop to get the records first.
        await asyncio.sleep(1.5)
        return await slow_read(self, assigned)

    monkeypatch.setattr(KeyOrderedConsumer, "_committed_with_metadata", slow)
    handled: list[int] = []

    async def handler(msg: Received) -> None:
        handled.append(msg.record.offset)

    consumer = KeyOrderedConsumer(
        bootstrap, f"g-{uuid.uuid4().hex[:8]}", [topic], handler, dead_letter=_nothing_dead
    )
    await consumer.start()
    try:
        await wait_until_async(
            lambda: len(handled) == 20, timeout_s=30, what="every record, once the lane opened"
        )
    finally:
        await consumer.stop()
    assert sorted(handled) == list(range(20))
    assert consumer.commit_stats.unowned_records > 0, "the race did not happen in this run"


async def test_an_assignment_hook_longer_than_the_session_keeps_the_group(
    bootstrap: str, new_topic: NewTopic
) -> None:
    """aiokafka sends no heartbeat during its assignment callback: a hook run in it
    for longer than the session timeout got the member expelled, reassigned and the
    hook run again, forever (the planner's rebuild of 64 partitions at 10^4 tasks)."""
    topic = await new_topic(partitions=2)
    await _produce(bootstrap, topic, 20, keys=4)
    hooks: list[list[int]] = []
    hook_ended: list[float] = []
    handled: list[tuple[float, int]] = []

    async def rebuild(partitions: list[TopicPartition]) -> None:
        hooks.append([tp.partition for tp in partitions])
        await asyncio.sleep(6)  # twice the session timeout below
        hook_ended.append(asyncio.get_running_loop().time())

    async def handler(msg: Received) -> None:
        handled.append((asyncio.get_running_loop().time(), msg.record.offset))

    consumer = KeyOrderedConsumer(
        bootstrap,
        f"g-{uuid.uuid4().hex[:8]}",
        [topic],
        handler,
        dead_letter=_nothing_dead,
        config=ConsumerConfig(session_timeout_ms=3_000, heartbeat_interval_ms=500),
        on_assigned=rebuild,
    )
    loop = asyncio.get_running_loop()
    await consumer.start()
    try:
        # And 4 s more: an expelled member learns it at its first heartbeat after
        # the hook, rejoins, and runs the hook a second time.
        await wait_until_async(
            lambda: len(handled) == 20 and bool(hook_ended) and loop.time() > hook_ended[0] + 4,
            timeout_s=40,
            what="every record, after the one hook",
        )
    finally:
        await consumer.stop()
    assert hooks == [[0, 1]], f"the member was reassigned: hooks ran for {hooks}"
    assert min(at for at, _ in handled) >= hook_ended[0], "a record was handled mid-rebuild"
