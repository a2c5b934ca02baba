"""The gateway's view starts a bounded window back in the logs, not at their beginning:
a task whose records are older than the window is not read at start-up."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaProducer

from synod.roles.gateway.view import TaskFeed, ViewConsumer
from synod.transport.admin import ensure_topics
from synod.transport.topics import RESULTS, TASK_EVENTS, topic_name
from synod.wire import Codec, Envelope, Sender, TaskSubmitted

GATEWAY = Sender(role="gateway", instance="gateway-test")


async def _view(bootstrap: str, prefix: str, window_s: float | None) -> TaskFeed:
    feed = TaskFeed()
    view = ViewConsumer(
        bootstrap,
        feed,
        task_events_topic=topic_name(TASK_EVENTS, prefix),
        results_topic=topic_name(RESULTS, prefix),
        window_s=window_s,
    )
    await view.start()
    try:
        for _ in range(300):  # polled: caught_up is a flag, not an event
            if view.caught_up:
                break
            await asyncio.sleep(0.1)
        assert view.caught_up, "the view did not catch up within 30 s"
    finally:
        await view.stop()
    return feed


async def test_the_view_reads_the_window_and_leaves_older_history_out(bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, (TASK_EVENTS, RESULTS), prefix=prefix, partitions=2)
    codec = Codec()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    now_ms = int(time.time() * 1000)
    try:
        for task_id, age_s in (("old-task", 7200), ("new-task", 60)):
            env = Envelope.new(
                TaskSubmitted(goal=f"goal of {task_id}"), sender=GATEWAY, task_id=task_id
            )
            await producer.send_and_wait(
                topic_name(TASK_EVENTS, prefix),
                codec.encode(env),
                key=task_id.encode(),
                timestamp_ms=now_ms - age_s * 1000,
            )
    finally:
        await producer.stop()
    windowed = await _view(bootstrap, prefix, window_s=3600)
    assert "new-task" in windowed.index
    assert "old-task" not in windowed.index
    everything = await _view(bootstrap, prefix, window_s=None)
    assert {"old-task", "new-task"} <= {v.task_id for v in everything.index}
