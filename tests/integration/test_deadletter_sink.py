"""The dead-letter sink on the real broker: whatever the record, the dead letter fits."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer

from synod.transport import DeadLetterPublisher, Publisher
from synod.transport.admin import ensure_topics
from synod.transport.deadletter import MAX_KEPT_TRUNCATED_BYTES, MAX_KEPT_VALUE_BYTES
from synod.transport.dispatcher import RawRecord
from synod.transport.topics import DLQ, topic_name
from synod.wire import Codec, DeadLetter, Sender


async def test_a_record_whose_dead_letter_would_be_too_big_is_kept_by_its_head(
    bootstrap: str,
) -> None:
    prefix = f"sink{uuid.uuid4().hex[:6]}."
    await ensure_topics(bootstrap, (DLQ,), prefix=prefix, partitions=1)
    dlq = topic_name(DLQ, prefix)
    # A value the sink would keep whole, with headers that push the dead letter
    # over the 1 MB limit: without the fallback the sink raises and the
    # partition stalls on this record.
    value = b"v" * MAX_KEPT_VALUE_BYTES
    headers = tuple((f"h{i}", b"x" * 1_000) for i in range(150))
    record = RawRecord("synod.tasks", 0, 42, b"task-1", value, headers)
    async with Publisher(bootstrap) as publisher:
        sink = DeadLetterPublisher(publisher, dlq, Sender(role="planner", instance="p-0"))
        await sink(record, "undecodable", "junk", "permanent", attempts=2)

    reader = AIOKafkaConsumer(dlq, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await reader.start()
    try:
        records = []
        for _ in range(40):
            for batch in (await reader.getmany(timeout_ms=500)).values():
                records.extend(batch)
            if records:
                break
    finally:
        await reader.stop()
    assert len(records) == 1
    letter = Codec().decode(records[0].value).body
    assert isinstance(letter, DeadLetter)
    assert letter.value == value[:MAX_KEPT_TRUNCATED_BYTES]
    assert letter.value_size == len(value)
    assert [h.key for h in letter.headers] == [k for k, _ in headers]
    assert (letter.offset, letter.attempts, letter.reason) == (42, 2, "undecodable")
