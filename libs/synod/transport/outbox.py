"""A log record and its copies on to other topics, written at once: the planner's outbox.

`publish_all(records)` writes each record and then its `copies` (the same
envelope, as the log holds it, on to its destination), with no read-back of
the log in between (ADR 0012). Two ways:

- `atomic=False` (ack): the records go out in order without waiting for
  each ack, then, once the broker has them all, their copies. A crash between
  the two leaves a record without its copy, which the caller repairs when it
  reads the record back (at least once, same id).
- `atomic=True`: one Kafka transaction holds the records and their copies,
  so neither exists without the other (exactly once). Consumers read
  `read_committed` (`ConsumerConfig`, `PartitionReader`), so an aborted or
  unfinished write is never seen. One producer has one transaction open at a
  time; writes that arrive while one commits share the next (group commit).

The transactional id is stable per instance (`<prefix>synod.<role>.<instance>`):
a restarted instance fences its predecessor's zombie and aborts what it left
open. An instance that never comes back leaves its open transaction to the
broker, which aborts it after `transaction_timeout_ms`; until then
`read_committed` readers of those partitions stop at it, so the timeout is
short (transactions here last milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from synod.observability.hops import PublishHop, start_publish
from synod.transport.authorship import Signer
from synod.transport.causal import Stamper
from synod.transport.clients import kafka_producer
from synod.transport.partitioner import partition_for
from synod.transport.producer import kafka_headers
from synod.wire import Codec, ContentType, Envelope

TRANSACTION_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Outgoing:
    """One record of an atomic write; `key` and `partition_key` as `Publisher.publish`'s.

    `copies` (topic, content type, key): the same envelope, as it went to
    `topic` (its clocks), sent on to each of these too, as a record read back
    from the log would be forwarded.
    """

    topic: str
    envelope: Envelope[Any]
    content_type: ContentType = "avro"
    key: bytes | None = None
    partition_key: bytes | None = None
    copies: tuple[tuple[str, ContentType, bytes | None], ...] = ()


@dataclass
class _Prepared:
    topic: str
    value: bytes
    key: bytes | None
    partition_key: bytes | None
    headers: list[tuple[str, bytes]]
    hop: PublishHop  # its producer span, ended once the broker has the record


class Outbox:
    """`publish_all(records)` returns once the broker has them and their copies (or raises)."""

    def __init__(
        self,
        bootstrap: str,
        transactional_id: str | None = None,
        *,
        codec: Codec | None = None,
        client_id: str = "synod",
        stamper: Stamper | None = None,
        signer: Signer | None = None,
        transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS,
    ) -> None:
        self.codec = codec or Codec()
        self.stamper = stamper
        self.signer = signer  # as Publisher's: a copy sent on keeps its signature
        self.atomic = transactional_id is not None
        self.transactions = 0  # committed, for tests and benchmarks
        atomic: dict[str, Any] = (
            {"transactional_id": transactional_id, "transaction_timeout_ms": transaction_timeout_ms}
            if transactional_id is not None
            else {}
        )
        self._producer = kafka_producer(
            bootstrap,
            client_id=client_id,
            **atomic,
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
            max_request_size=self.codec.max_bytes + 64 * 1024,
        )
        self._queue: list[tuple[list[_Prepared], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Idempotent; `publish_all` calls it, so the first write may come before
        the service's own start-up is done (a handler on a fresh assignment)."""
        async with self._starting:
            if self._runner is not None:
                return
            await self._producer.start()  # InitProducerId: fences an older instance's zombie
            self._runner = asyncio.create_task(self._commit_loop() if self.atomic else _idle())

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for _, waiter in self._queue:
            if not waiter.done():
                waiter.set_exception(ConnectionError("the transactional publisher stopped"))
        self._queue.clear()
        await self._producer.stop()

    async def publish_all(self, records: list[Outgoing]) -> None:
        """Stamp and encode `records` here (the caller's handling context names
        the causes), then wait for the broker (atomic: the transaction that carries them)."""
        prepared: list[_Prepared] = []
        copies: list[_Prepared] = []
        for r in records:
            sent = self._prepare(
                prepared, r.topic, r.envelope, r.content_type, r.key, r.partition_key
            )
            for topic, content_type, key in r.copies:
                self._prepare(copies, topic, sent, content_type, key, None)
        if not prepared:
            return
        await self.start()
        if not self.atomic:
            await self._send_all(prepared)
            await self._send_all(copies)  # only once the records they copy are in
            return
        prepared += copies
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((prepared, waiter))
        self._wake.set()
        await waiter

    def _prepare(
        self,
        out: list[_Prepared],
        topic: str,
        envelope: Envelope[Any],
        content_type: ContentType,
        key: bytes | None,
        partition_key: bytes | None,
    ) -> Envelope[Any]:
        if self.stamper is not None:
            envelope = self.stamper.stamp(topic, envelope)
        if self.signer is not None:
            envelope = self.signer.sign(envelope)
        hop = start_publish(topic, envelope, key)  # the producer span, as Publisher's
        try:
            data = self.codec.encode(hop.envelope, content_type)
        except BaseException as exc:
            hop.end(exc)
            raise
        headers = kafka_headers(hop.envelope, content_type)
        routed_key = key if key is not None else hop.envelope.key
        out.append(_Prepared(topic, data, routed_key, partition_key, headers, hop))
        return hop.envelope

    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            try:
                await self._commit([p for records, _ in batch for p in records])
            except Exception as exc:  # every waiter of this transaction hears why
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            self.transactions += 1
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_result(None)

    async def _commit(self, records: list[_Prepared]) -> None:
        async with self._producer.transaction():
            await self._send_all(records)

    async def _send_all(self, records: list[_Prepared]) -> None:
        """Queued in order (one partition keeps it), then every ack awaited."""
        try:
            sent = []
            for r in records:
                partition = None
                if r.partition_key is not None:
                    count = len(await self._producer.partitions_for(r.topic))
                    partition = partition_for(r.partition_key, count)
                sent.append(
                    await self._producer.send(
                        r.topic, r.value, key=r.key, partition=partition, headers=r.headers
                    )
                )
            acks = await asyncio.gather(*sent)
        except BaseException as exc:
            for r in records:
                r.hop.end(exc)
            raise
        for r, metadata in zip(records, acks, strict=True):
            r.hop.sent(metadata)
            r.hop.end()


async def _idle() -> None:
    await asyncio.Event().wait()
