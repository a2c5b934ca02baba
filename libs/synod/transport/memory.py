"""An in-memory transport with the Kafka transport's interface.

For unit tests and deterministic simulation: publish and consume envelopes
with the same key-ordered concurrency, through the same codec (so a message
that would not survive the wire does not survive here either). It does not
model consumer groups, offsets or rebalances; those are tested on the real
broker only.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from synod.transport.dispatcher import (
    DeadLetterSink,
    Dispatcher,
    DispatchStats,
    Handler,
    Lane,
    RawRecord,
)
from synod.transport.offsets import PartitionOffsets
from synod.transport.producer import kafka_headers
from synod.wire import Codec, ContentType, Envelope


class MemoryBroker:
    """Topics as lists of partitions; every subscriber sees every record of its topics."""

    def __init__(self, partitions: int = 12, codec: Codec | None = None) -> None:
        self.partitions = partitions
        self.codec = codec or Codec()
        self.topics: dict[str, list[list[RawRecord]]] = {}
        self._subscribers: list[MemoryConsumer] = []

    def _topic(self, name: str) -> list[list[RawRecord]]:
        return self.topics.setdefault(name, [[] for _ in range(self.partitions)])

    def partition_for(self, key: bytes | None, topic: str) -> int:
        # Stable across runs (unlike hash()), so simulations replay exactly.
        if key is None:
            return sum(len(p) for p in self._topic(topic)) % self.partitions
        return zlib.crc32(key) % self.partitions

    def append(self, topic: str, key: bytes | None, value: bytes, headers: Any = ()) -> RawRecord:
        partition = self.partition_for(key, topic)
        log = self._topic(topic)[partition]
        record = RawRecord(topic, partition, len(log), key, value, tuple(headers))
        log.append(record)
        for sub in self._subscribers:
            if topic in sub.topics:
                sub._deliver(record)
        return record

    def records(self, topic: str) -> list[RawRecord]:
        return [r for part in self._topic(topic) for r in part]


class MemoryPublisher:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.codec = broker.codec

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(
        self,
        topic: str,
        envelope: Envelope[Any],
        content_type: ContentType = "avro",
        key: bytes | None = None,
    ) -> RawRecord:
        data = self.codec.encode(envelope, content_type)
        headers = kafka_headers(envelope, content_type)
        return self.broker.append(topic, key if key is not None else envelope.key, data, headers)

    async def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> RawRecord:
        return self.broker.append(topic, key, value, headers or [])


class MemoryConsumer:
    def __init__(
        self,
        broker: MemoryBroker,
        topics: list[str],
        handler: Handler,
        *,
        dead_letter: DeadLetterSink,
        concurrency: int = 200,
        from_beginning: bool = True,
    ) -> None:
        self.broker = broker
        self.topics = topics
        self.from_beginning = from_beginning
        self.dispatcher = Dispatcher(
            handler, dead_letter, codec=broker.codec, concurrency=concurrency
        )
        self._lanes: dict[tuple[str, int], Lane] = {}

    @property
    def stats(self) -> DispatchStats:
        return self.dispatcher.stats

    def _lane(self, topic: str, partition: int) -> Lane:
        lane = self._lanes.get((topic, partition))
        if lane is None:
            lane = self.dispatcher.open_lane(topic, partition, PartitionOffsets(start=0))
            self._lanes[(topic, partition)] = lane
        return lane

    def _deliver(self, record: RawRecord) -> None:
        self.dispatcher.ingest(self._lane(record.topic, record.partition), record)
        self.dispatcher.dispatch()

    async def start(self) -> None:
        self.broker._subscribers.append(self)
        if self.from_beginning:
            for topic in self.topics:
                for record in self.broker.records(topic):
                    self._deliver(record)

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        if self in self.broker._subscribers:
            self.broker._subscribers.remove(self)
        lanes = list(self._lanes.values())
        await self.dispatcher.close_lanes(lanes, drain_timeout_s)
        self.dispatcher.forget(lanes)

    async def wait_idle(self) -> None:
        """Until no handler runs and nothing is queued (new records may start more)."""
        while True:
            await self.dispatcher.wait_idle()
            await asyncio.sleep(0)
            if self.dispatcher.in_flight == 0 and not any(
                lane.keys.queued for lane in self._lanes.values()
            ):
                return
