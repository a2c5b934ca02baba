"""The in-memory transport: same codec, same key-ordered concurrency, no broker."""

from __future__ import annotations

import asyncio
import random

from synod.transport import MemoryBroker, MemoryConsumer, MemoryPublisher, RawRecord, Received
from synod.wire import Envelope, Sender, StepCompleted

SENDER = Sender(role="coder", instance="coder-0")


async def test_per_key_order_with_concurrency_and_poison_to_dead_letters() -> None:
    broker = MemoryBroker(partitions=4)
    publisher = MemoryPublisher(broker)
    rng = random.Random(3)
    seen: dict[str, list[int]] = {}
    running = 0
    peak = 0
    dead: list[tuple[RawRecord, str]] = []

    async def handler(msg: Received) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(rng.random() / 500)
        running -= 1
        seen.setdefault(msg.envelope.task_id or "", []).append(int(msg.envelope.body.output))

    async def dead_letter(record: RawRecord, reason: str, message: str, cls: str) -> None:
        dead.append((record, reason))

    consumer = MemoryConsumer(broker, ["work"], handler, dead_letter=dead_letter, concurrency=16)
    await consumer.start()
    for i in range(400):
        task = f"t{i % 20}"
        env = Envelope.new(StepCompleted(step_id="s", output=str(i)), sender=SENDER, task_id=task)
        await publisher.publish("work", env)
        if i == 200:
            await publisher.publish_raw("work", b"\x00garbage", key=b"t3")
        if i == 300:  # a redelivery: same message id again
            await publisher.publish("work", env)
    await consumer.wait_idle()
    await consumer.stop()

    assert sum(map(len, seen.values())) == 400
    for task, outputs in seen.items():
        assert outputs == sorted(outputs), task
    assert peak > 1
    assert peak <= 16
    assert [reason for _, reason in dead] == ["undecodable"]
    assert dead[0][0].value == b"\x00garbage"
    assert consumer.stats.duplicates == 1


async def test_a_copy_on_another_topic_is_not_a_duplicate() -> None:
    """The planner copies a task from synod.tasks to its log with the same id."""
    broker = MemoryBroker(partitions=2)
    publisher = MemoryPublisher(broker)
    handled: list[str] = []

    async def handler(msg: Received) -> None:
        handled.append(msg.record.topic)

    async def dead_letter(record: RawRecord, reason: str, message: str, cls: str) -> None:
        raise AssertionError(reason)

    consumer = MemoryConsumer(broker, ["a", "b"], handler, dead_letter=dead_letter)
    await consumer.start()
    env = Envelope.new(StepCompleted(step_id="s", output="x"), sender=SENDER, task_id="t")
    await publisher.publish("a", env)
    await publisher.publish("b", env)
    await publisher.publish("b", env)  # a redelivery on the same topic
    await consumer.wait_idle()
    await consumer.stop()
    assert sorted(handled) == ["a", "b"]
    assert consumer.stats.duplicates == 1
