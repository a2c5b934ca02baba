"""`make demo`: a demonstration on a real local Kafka broker.

Until the agent pipeline lands, the demo shows the foundation end to end: it
starts (or reuses) a real single-node Kafka, creates the edge topics, submits
a task the way any Kafka client would (a bare JSON object, as `kcat -P` would
send it), then sends one task's whole conversation as Avro envelopes keyed by
the task id, reads everything back, and checks what it read.

It prints success only for what it observed: every check compares bytes read
back from the broker with what was sent, and the exit status is 0 only if all
of them held.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any

from synod import localkafka
from synod.errors import SynodError
from synod.wire import Codec, Envelope
from synod.wire.codec import CONTENT_TYPE_HEADER
from synod.wire.examples import example_envelopes


def _say(msg: str) -> None:
    print(msg, flush=True)


async def _run(bootstrap: str) -> list[str]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    failures: list[str] = []
    codec = Codec()
    run = uuid.uuid4().hex[:8]
    tasks_topic, internal_topic = f"demo.{run}.tasks", f"demo.{run}.internal"

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(t, num_partitions=3, replication_factor=1)
                for t in (tasks_topic, internal_topic)
            ]
        )
    finally:
        await admin.close()
    _say(f"created topics {tasks_topic} and {internal_topic} (3 partitions each)")

    raw_task = b'{"task_id": "demo-1", "goal": "Write fizzbuzz(n) with tests"}'
    conversation = example_envelopes()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(tasks_topic, raw_task, key=b"demo-1")
        _say(f"submitted a plain JSON task, as any Kafka client would: {raw_task.decode()}")
        for envelope in conversation:
            await producer.send_and_wait(
                internal_topic,
                codec.encode(envelope),
                key=envelope.key,
                headers=[("content-type", CONTENT_TYPE_HEADER["avro"].encode())],
            )
        _say(f"sent one task's conversation: {len(conversation)} Avro envelopes")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        tasks_topic, internal_topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < 1 + len(conversation):
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    except TimeoutError:
        failures.append(f"read back {len(records)} of {1 + len(conversation)} messages in 30 s")
    finally:
        await consumer.stop()

    task_records = [r for r in records if r.topic == tasks_topic]
    if task_records:
        task = codec.decode(task_records[0].value)
        ok = task.type == "TaskSubmitted" and task.task_id == "demo-1"
        _say(
            f"  read back from {tasks_topic}: {task.type} task_id={task.task_id} "
            f"goal={task.body.goal!r} reviewers={task.body.reviewers} (defaults filled in)"
        )
        if not ok:
            failures.append("the JSON task did not decode to TaskSubmitted demo-1")

    internal = sorted((r for r in records if r.topic == internal_topic), key=lambda r: r.offset)
    decoded: list[Envelope[Any]] = [codec.decode(r.value) for r in internal]
    _say(f"  read back {len(decoded)} envelopes from {internal_topic}:")
    _say(f"  {'type':<15} {'partition':>9} {'offset':>6} {'avro B':>7} {'json B':>7}")
    for record, env in zip(internal, decoded, strict=True):
        _say(
            f"  {env.type:<15} {record.partition:>9} {record.offset:>6} "
            f"{len(record.value):>7} {len(codec.encode_json(env)):>7}"
        )
    sent_by_id = {e.message_id + e.type: e for e in conversation}
    for env in decoded:
        if sent_by_id.get(env.message_id + env.type) != env:
            failures.append(f"{env.type} read back differs from what was sent")
    task_partitions = {r.partition for r, e in zip(internal, decoded, strict=True) if e.task_id}
    if len(task_partitions) != 1:
        failures.append(f"one task's messages spread over partitions {sorted(task_partitions)}")
    else:
        task_types = [e.type for e in decoded if e.task_id]
        want = [e.type for e in conversation if e.task_id]
        _say(
            f"  the task's {len(task_types)} messages share partition "
            f"{task_partitions.pop()} and kept their order: {task_types == want}"
        )
        if task_types != want:
            failures.append("the task's messages came back out of order")
    return failures


def main() -> int:
    bootstrap = os.environ.get("SYNOD_BOOTSTRAP")
    run_dir = localkafka.default_home() / "demo"
    started = False
    try:
        if bootstrap:
            _say(f"using the broker at {bootstrap} (SYNOD_BOOTSTRAP)")
        else:
            t0 = time.monotonic()
            info = localkafka.start(run_dir)
            started = True
            bootstrap = info.bootstrap
            _say(
                f"started Apache Kafka {info.version} (KRaft) at {bootstrap} "
                f"in {time.monotonic() - t0:.1f}s"
            )
        failures = asyncio.run(_run(bootstrap))
    except SynodError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if started:
            localkafka.stop(run_dir)
            _say("stopped the broker the demo started")
    if failures:
        for failure in failures:
            print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    _say("demo ok: every message read back from Kafka equals what was sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
