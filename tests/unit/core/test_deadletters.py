"""`synod dlq`'s pure core: --since, folding copies, filters, and replaying once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from synod.core.deadletters import (
    DeadLetterFilter,
    DeadLetterIndex,
    ReplayLog,
    dead_letter_id,
    parse_since,
    plan_replay,
    replay_record,
    select,
    source_topics,
)
from synod.wire import DeadLetter, Envelope, Sender

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def _letter(
    offset: int,
    reason: str = "handler_error",
    *,
    topic: str = "synod.tasks",
    at: datetime = NOW,
    attempts: int = 1,
    instance: str = "planner-0",
    value: bytes = b"v",
    value_size: int | None = None,
    with_id: bool = True,
) -> Envelope[DeadLetter]:
    body = DeadLetter(
        dead_letter_id=dead_letter_id(topic, 0, offset) if with_id else "",
        source_topic=topic,
        partition=0,
        offset=offset,
        value=value,
        value_size=len(value) if value_size is None else value_size,
        reason=reason,
        message=f"failure at {offset}",
        attempts=attempts,
        first_failed_at=at,
        last_failed_at=at,
    )
    return Envelope.new(body, sender=Sender(role="planner", instance=instance))


def _index(*letters: Envelope[DeadLetter]) -> DeadLetterIndex:
    index = DeadLetterIndex()
    for i, env in enumerate(letters):
        index.apply(env, 0, i)
    return index


# ---------------------------------------------------------------- --since


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1.5h", timedelta(minutes=90)),
        (" 5m ", timedelta(minutes=5)),
    ],
)
def test_since_takes_a_duration_back_from_now(text: str, back: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - back


def test_since_takes_iso_times_and_reads_naive_ones_as_utc() -> None:
    assert parse_since("2026-11-28T09:30:00Z", NOW) == datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    assert parse_since("2026-11-28T09:30:00", NOW) == datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    plus_one = parse_since("2026-11-28T10:30:00+01:00", NOW)
    assert plus_one == datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    assert plus_one.tzinfo == UTC
    assert parse_since("2026-11-28", NOW) == datetime(2026, 11, 28, tzinfo=UTC)
    assert parse_since("2026-11-28T09:30:00-05:00", NOW) == datetime(
        2026, 11, 28, 14, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "10y", "", "-5m", "m10"])
def test_since_rejects_anything_else_and_says_what_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match=r"ISO-8601.*10m, 2h, 1d"):
        parse_since(text, NOW)


# ---------------------------------------------------------------- folding


def test_copies_of_one_dead_letter_fold_into_one_entry() -> None:
    early = _letter(5, at=NOW - timedelta(minutes=5), instance="reviewer-0")
    late = _letter(5, at=NOW, attempts=3, instance="reviewer-1")
    index = _index(late, early, _letter(6))
    assert len(index) == 2
    assert index.stored == 3
    entry = index.get(dead_letter_id("synod.tasks", 0, 5))
    assert entry is not None
    assert entry.copies == 2
    assert entry.first_failed_at == NOW - timedelta(minutes=5)
    assert entry.last_failed_at == NOW
    assert entry.attempts == 3
    assert entry.dead_lettered_by == {"reviewer-0", "reviewer-1"}
    assert sorted(entry.dlq_positions) == [(0, 0), (0, 1)]


def test_dead_letters_from_before_ids_get_the_id_of_their_position() -> None:
    index = _index(_letter(9, with_id=False))
    assert index.get(dead_letter_id("synod.tasks", 0, 9)) is not None


def test_records_that_are_not_dead_letters_are_not_entries() -> None:
    from synod.wire import StepCompleted

    index = DeadLetterIndex()
    other = Envelope.new(
        StepCompleted(step_id="s"), sender=Sender(role="coder", instance="c"), task_id="t"
    )
    assert index.apply(other) is None
    assert len(index) == 0
    assert index.stored == 0


def test_entries_come_oldest_failure_first() -> None:
    index = _index(_letter(1, at=NOW), _letter(2, at=NOW - timedelta(hours=1)))
    assert [e.letter.offset for e in index] == [2, 1]


# ---------------------------------------------------------------- filters


def test_filters_by_reason_time_topic_and_id_all_at_once() -> None:
    index = _index(
        _letter(1, "undecodable", at=NOW - timedelta(hours=2)),
        _letter(2, "undecodable", at=NOW - timedelta(minutes=5)),
        _letter(3, "handler_error", at=NOW - timedelta(minutes=5)),
        _letter(4, "undecodable", topic="synod.votes", at=NOW),
    )
    offsets = lambda f: [e.letter.offset for e in select(index, f)]  # noqa: E731
    assert offsets(DeadLetterFilter()) == [1, 2, 3, 4]
    assert offsets(DeadLetterFilter(reasons=frozenset({"undecodable"}))) == [1, 2, 4]
    assert offsets(DeadLetterFilter(since=parse_since("10m", NOW))) == [2, 3, 4]
    assert offsets(DeadLetterFilter(topics=frozenset({"synod.votes"}))) == [4]
    both = DeadLetterFilter(
        reasons=frozenset({"undecodable"}),
        since=NOW - timedelta(minutes=10),
        topics=frozenset({"synod.tasks"}),
    )
    assert offsets(both) == [2]
    assert offsets(DeadLetterFilter(ids=frozenset({dead_letter_id("synod.tasks", 0, 3)}))) == [3]


def test_topic_filters_name_catalogue_topics_with_or_without_the_prefix() -> None:
    assert source_topics(["synod.tasks"], "") == {"synod.tasks"}
    assert source_topics(["synod.tasks", "p1.synod.votes"], "p1.") == {
        "p1.synod.tasks",
        "p1.synod.votes",
    }


# ---------------------------------------------------------------- replay


def test_replay_sends_handler_failures_and_skips_poison_unless_asked() -> None:
    index = _index(
        _letter(1, "handler_error"),
        _letter(2, "undecodable"),
        _letter(3, "unknown_schema"),
        _letter(4, "schema_violation"),
        _letter(5, "invalid_proposal"),
    )
    plan = plan_replay(index, DeadLetterFilter(), ReplayLog())
    assert [e.letter.offset for e in plan.replay] == [1, 5]
    assert [e.letter.offset for e in plan.poison] == [2, 3, 4]
    forced = plan_replay(index, DeadLetterFilter(), ReplayLog(), include_poison=True)
    assert [e.letter.offset for e in forced.replay] == [1, 2, 3, 4, 5]
    assert forced.poison == []


def test_a_truncated_dead_letter_is_never_replayed() -> None:
    index = _index(_letter(1, "oversized", value=b"head", value_size=2_000_000))
    plan = plan_replay(index, DeadLetterFilter(), ReplayLog(), include_poison=True)
    assert plan.replay == []
    assert [e.letter.offset for e in plan.truncated] == [1]


def test_replaying_twice_sends_nothing_the_second_time() -> None:
    index = _index(_letter(1), _letter(2), _letter(3, "undecodable"))
    log = ReplayLog()
    first = plan_replay(index, DeadLetterFilter(), log)
    assert [e.letter.offset for e in first.replay] == [1, 2]
    for entry in first.replay:  # what the CLI writes to synod.dlq.replays
        log.apply(entry.dead_letter_id, replay_record(entry, NOW, 0, 10, "cli-test"))
    second = plan_replay(index, DeadLetterFilter(), log)
    assert second.replay == []
    assert [e.letter.offset for e in second.already_replayed] == [1, 2]
    assert [e.letter.offset for e in second.poison] == [3]
    # Even forcing poison does not replay what was replayed.
    third = plan_replay(index, DeadLetterFilter(), log, include_poison=True)
    assert [e.letter.offset for e in third.replay] == [3]


def test_a_tombstone_in_the_replay_log_makes_a_dead_letter_replayable_again() -> None:
    index = _index(_letter(1))
    letter_id = dead_letter_id("synod.tasks", 0, 1)
    log = ReplayLog()
    log.apply(letter_id, {"dead_letter_id": letter_id})
    assert plan_replay(index, DeadLetterFilter(), log).replay == []
    log.apply(letter_id, None)
    assert len(plan_replay(index, DeadLetterFilter(), log).replay) == 1


def test_unknown_ids_are_reported_and_known_ones_still_planned() -> None:
    index = _index(_letter(1))
    known = dead_letter_id("synod.tasks", 0, 1)
    plan = plan_replay(index, DeadLetterFilter(ids=frozenset({known, "dl-nope"})), ReplayLog())
    assert plan.unknown_ids == ["dl-nope"]
    assert [e.dead_letter_id for e in plan.replay] == [known]


def test_a_replay_record_says_what_was_sent_where() -> None:
    index = _index(_letter(1))
    [entry] = list(index)
    record = replay_record(entry, NOW, 2, 99, "cli-x")
    assert record["dead_letter_id"] == entry.dead_letter_id
    assert (record["copy_partition"], record["copy_offset"], record["by"]) == (2, 99, "cli-x")
    assert record["replayed_at"] == NOW.isoformat()
