"""Dead letters: records that cannot be handled, kept whole with the reason.

A poison message (undecodable, unknown schema, schema-invalid, oversized) or a
record whose handler failed must neither stop its partition nor vanish. It is
published to `synod.dlq` as a DeadLetter envelope carrying the original bytes,
key and headers, where it came from, and why; `synod dlq` reads them back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from synod.errors import ErrorClass
from synod.transport.dispatcher import RawRecord
from synod.transport.producer import Publisher
from synod.wire import DeadLetter, Envelope, Header, Sender
from synod.wire.messages import utc_now


def dead_letter_of(
    record: RawRecord, reason: str, message: str, error_class: ErrorClass, now: datetime
) -> DeadLetter:
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=[Header(key=k, value=v) for k, v in record.headers],
        error_class=error_class,
        reason=reason,
        message=message[:10_000],
        attempts=1,
        first_failed_at=now,
    )


class DeadLetterPublisher:
    """A dead-letter sink that publishes to the DLQ topic and returns once it is stored."""

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        sender: Sender,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.publisher = publisher
        self.topic = topic
        self.sender = sender
        self.clock = clock

    async def __call__(
        self, record: RawRecord, reason: str, message: str, error_class: ErrorClass
    ) -> None:
        body = dead_letter_of(record, reason, message, error_class, self.clock())
        # Keyed by the source record's key so one task's dead letters stay together.
        task_id = record.key.decode(errors="replace") if record.key else None
        envelope = Envelope.new(body, sender=self.sender, task_id=task_id)
        await self.publisher.publish(self.topic, envelope)
