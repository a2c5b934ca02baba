"""The local broker is a real Kafka in KRaft mode that does what Synod relies on:
keyed partitioning, consumer groups, transactions, and our codec on the wire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from synod.wire import Codec
from synod.wire.codec import CONTENT_TYPE_HEADER
from synod.wire.examples import example_envelopes

NewTopic = Callable[..., Coroutine[Any, Any, str]]


async def _consume(bootstrap: str, topic: str, count: int, **kw: Any) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", **kw
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for msgs in batch.values():
                    records.extend(msgs)
    finally:
        await consumer.stop()
    return records


async def test_broker_is_kraft_with_one_node(admin: AIOKafkaAdminClient, kafka: Any) -> None:
    cluster = await admin.describe_cluster()
    assert len(cluster["brokers"]) == 1
    assert cluster["controller_id"] == cluster["brokers"][0]["node_id"]
    if kafka.started_by_tests:
        assert kafka.version.startswith(("3.9", "4.1"))


async def test_every_message_type_round_trips_through_kafka_in_both_encodings(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    codec = Codec()
    sent = []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for envelope in example_envelopes():
            for content_type in ("avro", "json"):
                await producer.send_and_wait(
                    topic,
                    codec.encode(envelope, content_type),
                    key=envelope.key,
                    headers=[("content-type", CONTENT_TYPE_HEADER[content_type].encode())],
                )
                sent.append((envelope, content_type))
    finally:
        await producer.stop()
    records = await _consume(bootstrap, topic, len(sent))
    got = sorted(
        ((codec.decode(r.value), dict(r.headers)["content-type"].decode()) for r in records),
        key=lambda pair: (pair[0].type, pair[1]),
    )
    want = sorted(
        ((e, CONTENT_TYPE_HEADER[ct]) for e, ct in sent), key=lambda pair: (pair[0].type, pair[1])
    )
    assert got == want
    # One task, one key, one partition.
    by_key: dict[bytes, set[int]] = {}
    for r in records:
        if r.key is not None:
            by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())


async def test_transactions_commit_and_abort_on_one_node(
    bootstrap: str, new_topic: NewTopic
) -> None:
    """Needs transaction.state.log replication 1 and min.isr 1 on a single node."""
    topic = await new_topic(partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"test-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-2")
    finally:
        await producer.stop()
    records = await _consume(bootstrap, topic, 2, isolation_level="read_committed")
    assert [r.value for r in records] == [b"committed", b"committed-2"]


async def test_consumer_group_commits_and_resumes(bootstrap: str, new_topic: NewTopic) -> None:
    topic = await new_topic(partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(topic, str(i).encode())
    await producer.stop()

    first = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await first.start()
    try:
        async with asyncio.timeout(30):
            seen: list[Any] = []
            while len(seen) < 4:
                batch = await first.getmany(timeout_ms=500, max_records=4 - len(seen))
                for msgs in batch.values():
                    seen.extend(msgs)
        await first.commit({TopicPartition(topic, 0): seen[-1].offset + 1})
    finally:
        await first.stop()

    rest = await _consume(bootstrap, topic, 6, group_id=group, enable_auto_commit=False)
    assert [r.value for r in rest] == [str(i).encode() for i in range(4, 10)]
