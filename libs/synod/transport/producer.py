"""Publishing envelopes to Kafka: idempotent, acks=all, keyed by task id.

Headers carry what a non-Synod consumer or a tracing tool needs without
decoding the body: `message-id`, `content-type`, `type` and the W3C
`traceparent` / `tracestate`.

Batching: `linger_ms=0`. Agents send few, large messages whose latency matters
(a step's result unblocks the next step). aiokafka still batches under load,
since records accumulate while a request to the partition leader is in flight,
so lingering would only add latency at the rates Synod produces.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from synod.observability import publish_span
from synod.transport.authorship import Signer
from synod.transport.causal import Stamper
from synod.transport.partitioner import partition_for
from synod.transport.security import client_security
from synod.wire import Codec, ContentType, Envelope
from synod.wire.codec import CONTENT_TYPE_HEADER


def kafka_headers(envelope: Envelope[Any], content_type: ContentType) -> list[tuple[str, bytes]]:
    headers = [
        ("message-id", envelope.message_id.encode()),
        ("content-type", CONTENT_TYPE_HEADER[content_type].encode()),
        ("type", envelope.type.encode()),
    ]
    if envelope.trace.traceparent:
        headers.append(("traceparent", envelope.trace.traceparent.encode()))
    if envelope.trace.tracestate:
        headers.append(("tracestate", envelope.trace.tracestate.encode()))
    return headers


class Publisher:
    """Sends envelopes; `publish` returns once the broker has the record (acks=all)."""

    def __init__(
        self,
        bootstrap: str,
        *,
        codec: Codec | None = None,
        client_id: str = "synod",
        linger_ms: int = 0,
        stamper: Stamper | None = None,
        signer: Signer | None = None,
        **producer_options: Any,
    ) -> None:
        self.codec = codec or Codec()
        # Set by the service host: stamps every envelope's clocks on its way out.
        self.stamper = stamper
        # Set by the service host when the process has a key: signs every
        # envelope it authors (a copy sent on keeps its author's signature).
        self.signer = signer
        self._producer = AIOKafkaProducer(
            **client_security(),
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_request_size=self.codec.max_bytes + 64 * 1024,
            **producer_options,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def publish(
        self,
        topic: str,
        envelope: Envelope[Any],
        content_type: ContentType = "avro",
        key: bytes | None = None,
        *,
        partition_key: bytes | None = None,
    ) -> Any:
        """Encode and send; returns the record metadata (partition, offset).

        The key is the envelope's (its task id) unless given: work items of one
        task that need no order among them (parallel steps) take their own keys
        so they spread over the pool. `partition_key` picks the partition
        instead of the key (same hash): records with keys of their own that
        must still share one order (a task's workspace writes on a compacted
        topic) go where that key would.
        """
        if self.stamper is not None:
            envelope = self.stamper.stamp(topic, envelope)
        if self.signer is not None:
            envelope = self.signer.sign(envelope)
        with publish_span(topic, envelope, key) as hop:  # the producer span (observability)
            metadata = await self._send(topic, hop.envelope, content_type, key, partition_key)
            hop.sent(metadata)
            return metadata

    async def _send(
        self,
        topic: str,
        envelope: Envelope[Any],
        content_type: ContentType,
        key: bytes | None,
        partition_key: bytes | None,
    ) -> Any:
        data = self.codec.encode(envelope, content_type)
        partition = None
        if partition_key is not None:
            # The partition the key would pick: the one partitioner readers use too.
            count = len(await self._producer.partitions_for(topic))
            partition = partition_for(partition_key, count)
        return await self._producer.send_and_wait(
            topic,
            data,
            key=key if key is not None else envelope.key,
            partition=partition,
            headers=kafka_headers(envelope, content_type),
        )

    async def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Send bytes as they are (dead letters keep the original bytes)."""
        return await self._producer.send_and_wait(topic, value, key=key, headers=headers or [])
