"""The one reader and the one partitioner on the real broker.

`PartitionReader.read_to_end` returns what partitions held when it was called
(nothing for empty ones, everything of many), does not wait for records that
come later (a later `poll` gets them), starts where it is told, and gives up
at its timeout; a keyed record lands in the partition `partition_for` predicts,
through `Publisher` with and without a `partition_key`. A follower that decodes
every poll parses no schema after its first decode.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from tests.polling import wait_until_async

from synod.errors import BrokerError
from synod.transport import Publisher
from synod.transport.partitioner import partition_for
from synod.transport.reader import (
    PartitionReader,
    Since,
    decode,
    read_to_end,
    topic_partitions,
)
from synod.wire import Envelope, Heartbeat, Sender, avro

NewTopic = Callable[..., Coroutine[Any, Any, str]]
SENDER = Sender(role="coder", instance="reader-test")


def _beat(i: int) -> Envelope[Heartbeat]:
    body = Heartbeat(instance=f"i-{i}", role="coder", state="running")
    return Envelope.new(body, sender=SENDER)


async def _put(publisher: Publisher, topic: str, keys: list[bytes]) -> dict[bytes, Any]:
    return {key: await publisher.publish_raw(topic, b"v:" + key, key) for key in keys}


async def test_keyed_records_land_where_partition_for_says(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=7)
    keys = [f"task-{i}".encode() for i in range(40)]
    async with Publisher(bootstrap, client_id="reader-test") as publisher:
        placed = await _put(publisher, topic, keys)
        by_key = {k: m.partition for k, m in placed.items()}
        routed = await publisher.publish(
            topic, _beat(0), "json", b"own-key", partition_key=b"task-3"
        )
    assert by_key == {k: partition_for(k, 7) for k in keys}
    assert len(set(by_key.values())) > 1  # spread, so a wrong hash could not pass
    assert routed.partition == partition_for(b"task-3", 7)
    # ...and a reader of one key's partition finds the key's records there.
    [tp] = await topic_partitions(bootstrap, [topic], key=b"task-3")
    found = await read_to_end(bootstrap, [tp], timeout_s=30)
    assert {r.key for r in found} >= {b"task-3", b"own-key"}
    assert all(partition_for(r.key or b"", 7) == tp.partition for r in found if r.key != b"own-key")


async def test_empty_partitions_read_to_nothing_at_once(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=5)
    partitions = await topic_partitions(bootstrap, [topic])
    assert len(partitions) == 5
    assert await read_to_end(bootstrap, partitions, timeout_s=10) == []
    assert await read_to_end(bootstrap, [], timeout_s=10) == []


async def test_many_partitions_read_whole_in_offset_order(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=24)
    keys = [f"k-{i}".encode() for i in range(300)]
    async with Publisher(bootstrap, client_id="reader-test") as publisher:
        await _put(publisher, topic, keys)
    async with PartitionReader(bootstrap, fetch_records=50) as reader:  # many fetches
        await reader.assign(await topic_partitions(bootstrap, [topic]))
        records = await reader.read_to_end(timeout_s=60)
    assert sorted(r.key for r in records if r.key) == sorted(keys)
    assert len({r.partition for r in records}) > 12
    for p in range(24):
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == list(range(len(offsets)))


async def test_records_after_the_end_offsets_are_not_waited_for_but_polled_later(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    tp = TopicPartition(topic, 0)
    async with Publisher(bootstrap, client_id="reader-test") as publisher:
        await _put(publisher, topic, [f"before-{i}".encode() for i in range(10)])
        async with PartitionReader(bootstrap, fetch_records=3) as reader:
            await reader.assign([tp])
            batches = reader.batches_to_end(timeout_s=30)
            got = list(await anext(batches))  # the end offset (10) is fixed by now
            # Written while the read is under way: after the end it started with.
            await _put(publisher, topic, [f"after-{i}".encode() for i in range(5)])
            got += [r async for batch in batches for r in batch]
            assert [r.offset for r in got] == list(range(10))
            assert all(r.key is not None and r.key.startswith(b"before-") for r in got)
            later: list[Any] = []

            async def five_later() -> bool:
                later.extend(await reader.poll(0.5))
                return len(later) >= 5

            await wait_until_async(five_later, what="the five later records", timeout_s=30)
    assert [r.offset for r in later] == list(range(10, 15))
    assert [r.key for r in later] == [f"after-{i}".encode() for i in range(5)]


async def test_it_starts_at_an_offset_a_time_or_the_end(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    tp = TopicPartition(topic, 0)
    async with Publisher(bootstrap, client_id="reader-test") as publisher:
        first = await _put(publisher, topic, [b"a", b"b", b"c"])
        cut = max(m.timestamp for m in first.values()) + 1
        await wait_until_async(  # so the next records' timestamps are past `cut`
            lambda: time.time() * 1000 > cut, what="the clock to pass the cut", timeout_s=5
        )
        await _put(publisher, topic, [b"d", b"e"])
    assert [r.key for r in await read_to_end(bootstrap, [tp], start={tp: 2})] == [
        b"c",
        b"d",
        b"e",
    ]
    assert [r.key for r in await read_to_end(bootstrap, [tp], start=Since(cut))] == [b"d", b"e"]
    assert await read_to_end(bootstrap, [tp], start="end") == []
    assert await read_to_end(bootstrap, [tp], start=Since(int(time.time() * 1000) + 60_000)) == []


async def test_envelopes_decode_and_the_rest_are_kept_apart(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    async with Publisher(bootstrap, client_id="reader-test") as publisher:
        for i in range(4):
            await publisher.publish(topic, _beat(i), "avro", f"b{i}".encode())
        await publisher.publish_raw(topic, b"not an envelope", b"junk")
    records = await read_to_end(bootstrap, await topic_partitions(bootstrap, [topic]))
    decoded = decode(records)
    assert sorted(r.envelope.body.instance for r in decoded.received) == [
        f"i-{i}" for i in range(4)
    ]
    assert [r.key for r in decoded.undecodable] == [b"junk"]


async def test_a_poll_loop_that_decodes_parses_no_schema_per_poll(
    bootstrap: str, new_topic: NewTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `decode` without a codec builds a `Codec()`; that once parsed every schema
    # (0.5-2 s of CPU), so a follower decoding each poll stalled its event loop and
    # saw records hundreds of ms late (the peers bench's services row). Counted, not
    # timed: after the first decode, polling and decoding parse nothing, across GCs.
    topic = await new_topic(partitions=3)
    decode([])
    parsed: list[object] = []
    real_parse = avro.parse_schema

    def counting(schema: object, *args: Any, **kwargs: Any) -> object:
        parsed.append(schema)
        return real_parse(schema, *args, **kwargs)

    monkeypatch.setattr(avro, "parse_schema", counting)
    seen: list[str] = []
    async with (
        Publisher(bootstrap, client_id="reader-test") as publisher,
        PartitionReader(bootstrap) as reader,
    ):
        await reader.assign(await topic_partitions(bootstrap, [topic]), "end")
        for i in range(3):
            await publisher.publish(topic, _beat(i), "avro", f"b{i}".encode())
        for _ in range(40):
            gc.collect()
            seen += [r.envelope.body.instance for r in decode(await reader.poll(0.1)).received]
            if len(seen) == 3:
                break
    assert sorted(seen) == ["i-0", "i-1", "i-2"]
    assert parsed == []


async def test_a_read_that_outlasts_its_timeout_fails_saying_how_far_it_got(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    async with Publisher(bootstrap, client_id="reader-test") as publisher:
        await _put(publisher, topic, [b"x"])
    with pytest.raises(BrokerError, match=r"did not finish within 0 s \(0 records read"):
        await read_to_end(bootstrap, [TopicPartition(topic, 0)], timeout_s=0)


async def test_a_missing_topic_or_broker_is_a_clear_error(bootstrap: str) -> None:
    with pytest.raises(Exception, match="does not exist"):
        await topic_partitions(bootstrap, [f"test.missing.{uuid.uuid4().hex[:8]}"])
    reader = PartitionReader("127.0.0.1:1")
    with pytest.raises(BrokerError, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
        await reader.start()
