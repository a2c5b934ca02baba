"""Reading partitions to their end: the one group-less reader every "read it all" uses.

A reader that folds a log (the CLI's `synod status`, `synod dlq`, a task's
workspace, the planner's rebuild, the latest heartbeats) wants every record of
some partitions from a start up to what the partitions held when it began,
then to stop: not to wait for records that arrive later, and not to hang when
the broker is slow. `PartitionReader` does that without a consumer group
(nothing committed, nothing shared): `assign` partitions at a `Start`,
`read_to_end` returns the records below the end offsets taken when it was
called, bounded by a timeout. The same reader can then `poll` for what comes
after (`synod submit --wait`, `synod team run`, the quarantine follower).

Records come back as `RawRecord`s (topic, partition, offset, key, value,
headers, timestamp), in offset order per partition; `decode` turns them into
envelopes through the codec and keeps the ones that do not decode apart.
Transactions: by default only committed records are read (`read_committed`),
and the end offsets are the last stable offsets, so an open transaction's
records are neither returned nor waited for.

    async with PartitionReader(bootstrap) as reader:
        await reader.assign(await topic_partitions(bootstrap, [topic], key=b"task-1"))
        records = await reader.read_to_end(timeout_s=30)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from synod.errors import BrokerError, DecodeError
from synod.transport.admin import partition_counts
from synod.transport.clients import AIOKafkaConsumer, kafka_consumer
from synod.transport.dispatcher import RawRecord, Received
from synod.transport.partitioner import partition_for
from synod.transport.security import security_hint
from synod.wire import Codec


@dataclass(frozen=True)
class Since:
    """Start at the first record written at or after `timestamp_ms` (Unix ms); a
    partition with none starts at its end."""

    timestamp_ms: int


# Where reading starts: the beginning or the end of every assigned partition, a
# time (`Since`), or an offset per partition (others start at the beginning).
Start = Literal["beginning", "end"] | Since | Mapping[TopicPartition, int]

_POLL_MS = 500
_FETCH_RECORDS = 2_000


async def topic_partitions(
    bootstrap: str, topics: Iterable[str], *, key: bytes | None = None
) -> list[TopicPartition]:
    """Every partition of `topics`, or with `key` the one partition of each that holds it.

    Raises `ConfigError` naming the topic when one does not exist.
    """
    names = list(topics)
    counts = await partition_counts(bootstrap, names)
    return [
        TopicPartition(topic, p)
        for topic in names
        for p in ([partition_for(key, counts[topic])] if key is not None else range(counts[topic]))
    ]


@dataclass
class Decoded:
    """Records through the codec: what decoded, and what did not (kept as they were)."""

    received: list[Received] = field(default_factory=list)
    undecodable: list[RawRecord] = field(default_factory=list)


def decode(records: Iterable[RawRecord], codec: Codec | None = None) -> Decoded:
    codec = codec or Codec()
    out = Decoded()
    for record in records:
        try:
            out.received.append(Received(codec.decode(record.value), record))
        except DecodeError:
            out.undecodable.append(record)
    return out


class PartitionReader:
    """A group-less consumer of assigned partitions that can read them to their end."""

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "synod-reader",
        read_committed: bool = True,
        fetch_records: int = _FETCH_RECORDS,
    ) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.read_committed = read_committed
        self.fetch_records = fetch_records
        self.partitions: list[TopicPartition] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> PartitionReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        consumer = kafka_consumer(
            self.bootstrap,
            client_id=self.client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed" if self.read_committed else "read_uncommitted",
        )
        try:
            await consumer.start()
        except (KafkaError, OSError) as exc:
            await consumer.stop()
            raise BrokerError(
                f"cannot reach Kafka at {self.bootstrap}: {exc}{security_hint(self.bootstrap)}"
            ) from exc
        # Let aiokafka's group-less coordinator task begin: one cancelled before its
        # first step (a reader stopped with nothing read) makes stop() raise CancelledError.
        await asyncio.sleep(0)
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    def _running(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the reader is not started")
        return self._consumer

    async def assign(
        self, partitions: Sequence[TopicPartition], start: Start = "beginning"
    ) -> None:
        """Read `partitions` (replacing any assigned before), each from `start`."""
        consumer = self._running()
        self.partitions = list(dict.fromkeys(partitions))
        if not self.partitions:
            if consumer.assignment():
                consumer.unsubscribe()
            return
        consumer.assign(self.partitions)
        try:
            await self._seek(consumer, start)
        except KafkaError as exc:
            raise BrokerError(f"seeking {self._names()} on {self.bootstrap} failed: {exc}") from exc

    async def _seek(self, consumer: AIOKafkaConsumer, start: Start) -> None:
        if start == "beginning":
            await consumer.seek_to_beginning(*self.partitions)
        elif start == "end":
            await consumer.seek_to_end(*self.partitions)
        elif isinstance(start, Since):
            found = await consumer.offsets_for_times(
                {tp: start.timestamp_ms for tp in self.partitions}
            )
            ends = await consumer.end_offsets(self.partitions)
            for tp in self.partitions:
                at = found.get(tp)
                consumer.seek(tp, at.offset if at is not None else ends[tp])
        else:
            rest = [tp for tp in self.partitions if tp not in start]
            if rest:
                await consumer.seek_to_beginning(*rest)
            for tp in self.partitions:
                if tp in start:
                    consumer.seek(tp, start[tp])

    async def poll(self, timeout_s: float = _POLL_MS / 1000) -> list[RawRecord]:
        """One fetch from the assigned partitions: what arrived within `timeout_s`."""
        return await self._fetch(self.partitions, timeout_s)

    async def _fetch(
        self, partitions: Iterable[TopicPartition], timeout_s: float
    ) -> list[RawRecord]:
        consumer = self._running()
        wanted = list(partitions)
        if not wanted:
            return []
        try:
            batch = await consumer.getmany(
                *wanted, timeout_ms=max(0, int(timeout_s * 1000)), max_records=self.fetch_records
            )
        except KafkaError as exc:
            raise BrokerError(
                f"reading {self._names()} from {self.bootstrap} failed: {exc}"
            ) from exc
        return [_raw(r) for tp in wanted for r in batch.get(tp, ())]

    async def end_offsets(
        self, partitions: Sequence[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """The offset after the last (committed) record of each partition (default: the
        assigned ones), now."""
        wanted = list(self.partitions if partitions is None else partitions)
        if not wanted:
            return {}
        try:
            ends: dict[TopicPartition, int] = await self._running().end_offsets(wanted)
        except KafkaError as exc:
            raise BrokerError(f"reading the end of {self._names()} failed: {exc}") from exc
        return ends

    async def batches_to_end(
        self, timeout_s: float = 60.0, *, only: Iterable[TopicPartition] | None = None
    ) -> AsyncIterator[list[RawRecord]]:
        """The records from where each partition stands to its end offset as of this call,
        in fetched batches; raises `BrokerError` if that takes over `timeout_s`.

        Records written after the call are not waited for and not yielded: a partition
        fetched past its end is sought back to it, so a later `poll` returns them.
        `only`: read just these of the assigned partitions to their end.
        """
        consumer = self._running()
        wanted = self.partitions if only is None else [tp for tp in only if tp in self.partitions]
        ends = await self.end_offsets(wanted)
        pending = {tp for tp in wanted if await consumer.position(tp) < ends[tp]}
        deadline = time.monotonic() + timeout_s
        read = 0
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrokerError(
                    f"reading {self._names()} to its end did not finish within {timeout_s:g} s "
                    f"({read} records read, {len(pending)} partitions behind); "
                    "raise the timeout or check the broker"
                )
            fetched = await self._fetch(sorted(pending), min(left, _POLL_MS / 1000))
            batch = [r for r in fetched if r.offset < ends[TopicPartition(r.topic, r.partition)]]
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
                    if await consumer.position(tp) > ends[tp]:
                        consumer.seek(tp, ends[tp])  # leave what came later for `poll`
            if batch:
                read += len(batch)
                yield batch

    async def read_to_end(
        self, timeout_s: float = 60.0, *, only: Iterable[TopicPartition] | None = None
    ) -> list[RawRecord]:
        """Every record from where each partition stands to its end as of this call."""
        return [r async for batch in self.batches_to_end(timeout_s, only=only) for r in batch]

    def _names(self) -> str:
        topics = sorted({tp.topic for tp in self.partitions})
        return ", ".join(topics) or "no partitions"


async def read_to_end(
    bootstrap: str,
    partitions: Sequence[TopicPartition],
    *,
    start: Start = "beginning",
    timeout_s: float = 60.0,
    client_id: str = "synod-reader",
) -> list[RawRecord]:
    """The records of `partitions` from `start` to their end as of now (one reader, closed)."""
    if not partitions:
        return []
    async with PartitionReader(bootstrap, client_id=client_id) as reader:
        await reader.assign(partitions, start)
        return await reader.read_to_end(timeout_s)


def _raw(record: Any) -> RawRecord:
    return RawRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value if record.value is not None else b"",
        headers=tuple(record.headers or ()),
        timestamp_ms=record.timestamp,
    )


__all__ = [
    "Decoded",
    "PartitionReader",
    "Since",
    "Start",
    "decode",
    "read_to_end",
    "topic_partitions",
]
