"""Dead letters: records that cannot be handled, kept whole with the reason.

A poison message (undecodable, unknown schema, schema-invalid, oversized) or a
record whose handler failed must neither stop its partition nor vanish. It is
published to `synod.dlq` as a DeadLetter envelope carrying the original bytes,
key and headers, where it came from, and why; `synod dlq` reads them back.

Each dead letter has a stable id derived from where the record sits
(source topic, partition, offset), and the DLQ envelope's message id is that
id: the same record dead-lettered twice (a redelivery after a crash, or two
consumer groups failing on it) is one dead letter stored twice, which readers
fold into one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prometheus_client import Counter

from synod.core.deadletters import dead_letter_id
from synod.errors import DecodeError, EncodeError, ErrorClass
from synod.transport.dispatcher import RawRecord
from synod.transport.producer import Publisher
from synod.wire import Codec, DeadLetter, Envelope, Header, Sender
from synod.wire.messages import utc_now

DEAD_LETTERS = Counter(
    "synod_dead_letters",
    "Records stored in the dead-letter topic, by source topic and reason",
    ["topic", "reason"],
)

# What of a source record's value a dead letter keeps. The DLQ has the same
# 1 MB record limit as every topic, and the dead letter wraps the value with
# headers and a message: an oversized record keeps its first bytes only
# (value_size says how big it was); everything else is kept whole.
MAX_KEPT_VALUE_BYTES = 900_000
MAX_KEPT_TRUNCATED_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 10_000
_TASK_ID_MAX = 200


def _kept_value(value: bytes) -> bytes:
    if len(value) <= MAX_KEPT_VALUE_BYTES:
        return value
    return value[:MAX_KEPT_TRUNCATED_BYTES]


def _original_message_id(value: bytes, codec: Codec) -> str | None:
    try:
        return codec.decode(value).message_id
    except DecodeError:
        return None


def dead_letter_of(
    record: RawRecord,
    reason: str,
    message: str,
    error_class: ErrorClass,
    now: datetime,
    *,
    attempts: int = 1,
    first_failed_at: datetime | None = None,
    codec: Codec | None = None,
) -> DeadLetter:
    return DeadLetter(
        dead_letter_id=dead_letter_id(record.topic, record.partition, record.offset),
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=_kept_value(record.value),
        value_size=len(record.value),
        headers=[Header(key=k, value=v) for k, v in record.headers],
        error_class=error_class,
        reason=reason,
        message=message[:MAX_MESSAGE_CHARS],
        attempts=attempts,
        first_failed_at=first_failed_at or now,
        last_failed_at=now,
        original_message_id=_original_message_id(record.value, codec or Codec()),
    )


def _task_id_of(key: bytes | None) -> str | None:
    """The source record's key as the dead letter's task id, so one task's dead
    letters share a DLQ partition; None when the key cannot be a task id (a
    poison record's key may be any bytes)."""
    if not key:
        return None
    text = key.decode(errors="replace")
    return text if len(text) <= _TASK_ID_MAX else None


def dead_letter_envelope(
    body: DeadLetter, sender: Sender, key: bytes | None
) -> Envelope[DeadLetter]:
    return Envelope.new(
        body, sender=sender, task_id=_task_id_of(key), message_id=body.dead_letter_id
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
        self,
        record: RawRecord,
        reason: str,
        message: str,
        error_class: ErrorClass,
        *,
        attempts: int = 1,
        first_failed_at: datetime | None = None,
    ) -> None:
        """Store the record in the DLQ; `attempts` and `first_failed_at` say how
        often and since when it was tried (a caller that retried it first passes them)."""
        body = dead_letter_of(
            record,
            reason,
            message,
            error_class,
            self.clock(),
            attempts=attempts,
            first_failed_at=first_failed_at,
            codec=self.publisher.codec,
        )
        envelope = dead_letter_envelope(body, self.sender, record.key)
        try:
            await self.publisher.publish(self.topic, envelope)
        except EncodeError:
            # Huge headers or key around a value under the limit: keep the head of
            # the value and the headers' names, so the partition goes on.
            cut = body.model_copy(
                update={
                    "value": record.value[:MAX_KEPT_TRUNCATED_BYTES],
                    "headers": [Header(key=h.key[:200]) for h in body.headers[:1_000]],
                    "key": record.key[:_TASK_ID_MAX] if record.key else None,
                }
            )
            await self.publisher.publish(self.topic, dead_letter_envelope(cut, self.sender, None))
        DEAD_LETTERS.labels(record.topic, reason).inc()


__all__ = ["DEAD_LETTERS", "DeadLetterPublisher", "dead_letter_id", "dead_letter_of"]
