"""Dead letters built from raw records: stable ids, what is kept, the DLQ envelope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from synod.transport.deadletter import (
    MAX_KEPT_TRUNCATED_BYTES,
    MAX_KEPT_VALUE_BYTES,
    dead_letter_envelope,
    dead_letter_id,
    dead_letter_of,
)
from synod.transport.dispatcher import RawRecord
from synod.wire import Codec, Envelope, Sender, StepCompleted

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
SENDER = Sender(role="coder", instance="coder-0")
CODEC = Codec()


def _record(value: bytes, key: bytes | None = b"task-1", offset: int = 7) -> RawRecord:
    return RawRecord("synod.tasks", 3, offset, key, value, (("content-type", b"x"),))


def test_the_id_depends_on_the_position_only_and_is_short() -> None:
    one = dead_letter_id("synod.tasks", 3, 7)
    assert one == dead_letter_id("synod.tasks", 3, 7)
    assert one.startswith("dl-")
    assert len(one) == 19
    others = {
        dead_letter_id("synod.tasks", 3, 8),
        dead_letter_id("synod.tasks", 4, 7),
        dead_letter_id("p.synod.tasks", 3, 7),
        # The separator keeps these two apart.
        dead_letter_id("synod.tasks1", 3, 7),
        dead_letter_id("synod.tasks", 13, 7),
    }
    assert one not in others
    assert len(others) == 5


def test_a_redelivered_record_makes_the_same_dead_letter_and_the_same_dlq_message() -> None:
    first = dead_letter_of(_record(b"junk"), "undecodable", "bad", "permanent", T0)
    again = dead_letter_of(
        _record(b"junk"), "undecodable", "bad", "permanent", T0 + timedelta(seconds=5)
    )
    assert first.dead_letter_id == again.dead_letter_id
    a = dead_letter_envelope(first, SENDER, b"task-1")
    b = dead_letter_envelope(again, SENDER, b"task-1")
    assert a.message_id == b.message_id == first.dead_letter_id


def test_attempts_and_first_failure_come_from_the_caller_after_retries() -> None:
    letter = dead_letter_of(
        _record(b"x"),
        "handler_error",
        "boom",
        "transient",
        T0,
        attempts=4,
        first_failed_at=T0 - timedelta(minutes=3),
    )
    assert letter.attempts == 4
    assert letter.first_failed_at == T0 - timedelta(minutes=3)
    assert letter.last_failed_at == T0
    fresh = dead_letter_of(_record(b"x"), "handler_error", "boom", "transient", T0)
    assert (fresh.attempts, fresh.first_failed_at, fresh.last_failed_at) == (1, T0, T0)


def test_the_original_message_id_is_kept_when_the_bytes_decode() -> None:
    env = Envelope.new(StepCompleted(step_id="s", output="o"), sender=SENDER, task_id="task-1")
    letter = dead_letter_of(_record(CODEC.encode(env)), "handler_error", "x", "transient", T0)
    assert letter.original_message_id == env.message_id
    poison = dead_letter_of(_record(b"\xc3\x01zz"), "unknown_schema", "x", "permanent", T0)
    assert poison.original_message_id is None


def test_a_value_that_fits_is_kept_whole_and_an_oversized_one_by_its_head() -> None:
    whole = b"a" * MAX_KEPT_VALUE_BYTES
    kept = dead_letter_of(_record(whole), "undecodable", "x", "permanent", T0)
    assert kept.value == whole
    assert kept.value_size == len(whole)
    huge = bytes(range(256)) * 4_000  # 1,024,000 bytes: over the codec's 1 MB limit
    cut = dead_letter_of(_record(huge), "oversized", "x", "permanent", T0)
    assert cut.value == huge[:MAX_KEPT_TRUNCATED_BYTES]
    assert cut.value_size == len(huge)
    # And the dead letter itself fits in the DLQ.
    assert CODEC.encode(dead_letter_envelope(cut, SENDER, b"task-1"))


def test_any_key_bytes_make_a_valid_dlq_envelope() -> None:
    for key in (None, b"", b"\xff\xfe\x00", b"k" * 5_000, b"task-1"):
        letter = dead_letter_of(_record(b"junk", key=key), "undecodable", "x", "permanent", T0)
        env = dead_letter_envelope(letter, SENDER, key)
        decoded = CODEC.decode(CODEC.encode(env))
        assert decoded.body.key == key
    assert dead_letter_envelope(letter, SENDER, b"task-1").task_id == "task-1"
    assert dead_letter_envelope(letter, SENDER, b"k" * 5_000).task_id is None
