"""The dead-letter topic as `synod dlq` sees it: fold, filter, plan a replay.

Pure: no I/O and no clock (`now` is passed in). The CLI reads `synod.dlq` and
`synod.dlq.replays` and hands the records here.

Folding. One record can be dead-lettered more than once: a redelivery after a
crash, or several consumer groups on the same topic (every reviewer replica
reads `synod.votes`) each failing on it. All copies carry the same
`dead_letter_id` (derived from the record's position), so they fold into one
entry: the earliest first failure, the latest last failure, the most attempts.

Replaying once. `synod.dlq.replays` holds one record per replayed dead letter,
keyed by its id; a replay skips ids already there. A tombstone (null value) for
an id forgets its replay, so an operator can deliberately replay it again.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from synod.wire.messages import DeadLetter, Envelope

# Decode failures: replaying the same bytes would only dead-letter them again.
POISON_REASONS: frozenset[str] = frozenset(
    {"undecodable", "unknown_schema", "schema_violation", "oversized"}
)
MESSAGE_HEAD_CHARS = 60

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def dead_letter_id(source_topic: str, partition: int, offset: int) -> str:
    """The stable id of the dead letter for the record at this position.

    A hash rather than the position spelled out, so ids are short and uniform;
    16 hex digits (64 bits) make a collision among one DLQ's records
    vanishingly rare.
    """
    digest = hashlib.sha256(f"{source_topic}\x00{partition}\x00{offset}".encode()).hexdigest()
    return f"dl-{digest[:16]}"


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: an ISO-8601 time (naive means UTC) or a duration back from now
    (`30s`, `10m`, `2h`, `1d`, `1w`)."""
    match = _DURATION.match(text)
    if match is not None:
        amount, unit = float(match.group(1)), match.group(2)
        return now - timedelta(seconds=amount * _UNIT_S[unit])
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give an ISO-8601 time (2026-11-28T09:30:00Z) "
            "or a duration back from now (30s, 10m, 2h, 1d, 1w)"
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@dataclass
class DeadLetterEntry:
    """One dead letter, however many times it was stored."""

    letter: DeadLetter
    dead_letter_id: str
    first_failed_at: datetime
    last_failed_at: datetime
    attempts: int
    copies: int = 1
    dead_lettered_by: set[str] = field(default_factory=set)
    dlq_positions: list[tuple[int, int]] = field(default_factory=list)

    @property
    def poison(self) -> bool:
        return self.letter.reason in POISON_REASONS

    @property
    def truncated(self) -> bool:
        """The DLQ holds only the head of the value (the record was oversized)."""
        return self.letter.value_size > len(self.letter.value)

    @property
    def source(self) -> str:
        return f"{self.letter.source_topic}:{self.letter.partition}@{self.letter.offset}"

    def merge(self, other: DeadLetterEntry) -> None:
        self.first_failed_at = min(self.first_failed_at, other.first_failed_at)
        if other.last_failed_at >= self.last_failed_at:
            # The latest failure says the most recent reason and message.
            self.letter = other.letter
            self.last_failed_at = other.last_failed_at
        self.attempts = max(self.attempts, other.attempts)
        self.copies += other.copies
        self.dead_lettered_by |= other.dead_lettered_by
        self.dlq_positions.extend(other.dlq_positions)

    def summary(self) -> dict[str, Any]:
        """What `synod dlq list --json` prints per dead letter."""
        d = self.letter
        return {
            "id": self.dead_letter_id,
            "source_topic": d.source_topic,
            "partition": d.partition,
            "offset": d.offset,
            "reason": d.reason,
            "error_class": d.error_class,
            "attempts": self.attempts,
            "first_failed_at": self.first_failed_at.isoformat(),
            "last_failed_at": self.last_failed_at.isoformat(),
            "message": d.message,
            "original_message_id": d.original_message_id,
            "poison": self.poison,
            "value_size": max(d.value_size, len(d.value)),
            "truncated": self.truncated,
            "copies": self.copies,
            "dead_lettered_by": sorted(self.dead_lettered_by),
        }

    def detail(self) -> dict[str, Any]:
        """Everything, for `synod dlq show`: bytes as base64 and, where they are
        text, as text too."""
        d = self.letter
        return {
            **self.summary(),
            "key_base64": _b64(d.key),
            "key_text": _text(d.key),
            "value_base64": _b64(d.value),
            "value_text": _text(d.value),
            "headers": [
                {"key": h.key, "value_base64": _b64(h.value), "value_text": _text(h.value)}
                for h in d.headers
            ],
            "dlq_positions": [{"partition": p, "offset": o} for p, o in self.dlq_positions],
        }


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def message_head(text: str, limit: int = MESSAGE_HEAD_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def entry_of(
    envelope: Envelope[Any], dlq_partition: int = 0, dlq_offset: int = 0
) -> DeadLetterEntry | None:
    """The entry one DLQ record stands for; None when it is not a DeadLetter."""
    body = envelope.body
    if not isinstance(body, DeadLetter):
        return None
    # Dead letters written before ids existed get the id they would have had.
    letter_id = body.dead_letter_id or dead_letter_id(
        body.source_topic, body.partition, body.offset
    )
    first = body.first_failed_at or envelope.created_at
    last = body.last_failed_at or body.first_failed_at or envelope.created_at
    return DeadLetterEntry(
        letter=body,
        dead_letter_id=letter_id,
        first_failed_at=min(first, last),
        last_failed_at=last,
        attempts=body.attempts,
        dead_lettered_by={envelope.sender.instance},
        dlq_positions=[(dlq_partition, dlq_offset)],
    )


class DeadLetterIndex:
    """Every dead letter read from the DLQ, folded by id, in the order first seen."""

    def __init__(self) -> None:
        self._entries: dict[str, DeadLetterEntry] = {}
        self.stored = 0  # DLQ records folded in, copies included

    def apply(
        self, envelope: Envelope[Any], dlq_partition: int = 0, dlq_offset: int = 0
    ) -> DeadLetterEntry | None:
        entry = entry_of(envelope, dlq_partition, dlq_offset)
        if entry is None:
            return None
        self.stored += 1
        known = self._entries.get(entry.dead_letter_id)
        if known is None:
            self._entries[entry.dead_letter_id] = entry
            return entry
        known.merge(entry)
        return known

    def get(self, letter_id: str) -> DeadLetterEntry | None:
        return self._entries.get(letter_id)

    def __iter__(self) -> Iterator[DeadLetterEntry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.last_failed_at))

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters a command is about; an empty filter matches all."""

    ids: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    since: datetime | None = None
    topics: frozenset[str] = frozenset()  # source topics as named on the cluster

    @property
    def empty(self) -> bool:
        return not (self.ids or self.reasons or self.topics or self.since is not None)

    def matches(self, entry: DeadLetterEntry) -> bool:
        if self.ids and entry.dead_letter_id not in self.ids:
            return False
        if self.reasons and entry.letter.reason not in self.reasons:
            return False
        if self.topics and entry.letter.source_topic not in self.topics:
            return False
        return self.since is None or entry.last_failed_at >= self.since


def source_topics(names: Iterable[str], prefix: str) -> frozenset[str]:
    """`--topic` values as topics on the cluster: `synod.tasks` and, with a
    prefix set, `<prefix>synod.tasks` both name the prefixed topic."""
    out: set[str] = set()
    for name in names:
        out.add(name if prefix and name.startswith(prefix) else f"{prefix}{name}")
    return frozenset(out)


def select(index: DeadLetterIndex, wanted: DeadLetterFilter) -> list[DeadLetterEntry]:
    return [entry for entry in index if wanted.matches(entry)]


@dataclass
class ReplayPlan:
    """What a replay will do, decided before anything is sent."""

    replay: list[DeadLetterEntry] = field(default_factory=list)
    already_replayed: list[DeadLetterEntry] = field(default_factory=list)
    poison: list[DeadLetterEntry] = field(default_factory=list)  # skipped: decode failures
    truncated: list[DeadLetterEntry] = field(default_factory=list)  # skipped: value was cut
    unknown_ids: list[str] = field(default_factory=list)


def plan_replay(
    index: DeadLetterIndex,
    wanted: DeadLetterFilter,
    replayed: Iterable[str],
    *,
    include_poison: bool = False,
) -> ReplayPlan:
    """Split the selected dead letters into those to republish and those skipped, and why.

    Order of the checks: a dead letter already replayed is skipped whatever it
    is; a truncated one can never be replayed (its bytes are not all there); a
    poison one only with `include_poison`.
    """
    done = set(replayed)
    plan = ReplayPlan(unknown_ids=sorted(i for i in wanted.ids if index.get(i) is None))
    for entry in select(index, wanted):
        if entry.dead_letter_id in done:
            plan.already_replayed.append(entry)
        elif entry.truncated:
            plan.truncated.append(entry)
        elif entry.poison and not include_poison:
            plan.poison.append(entry)
        else:
            plan.replay.append(entry)
    return plan


class ReplayLog:
    """`synod.dlq.replays` folded: dead-letter id -> the replay record (latest wins)."""

    def __init__(self) -> None:
        self._replays: dict[str, dict[str, Any]] = {}

    def apply(self, letter_id: str, record: dict[str, Any] | None) -> None:
        if record is None:
            self._replays.pop(letter_id, None)  # a tombstone: replayable again
        else:
            self._replays[letter_id] = record

    def get(self, letter_id: str) -> dict[str, Any] | None:
        return self._replays.get(letter_id)

    def __contains__(self, letter_id: object) -> bool:
        return letter_id in self._replays

    def __iter__(self) -> Iterator[str]:
        return iter(self._replays)


def replay_record(
    entry: DeadLetterEntry, at: datetime, copy_partition: int, copy_offset: int, by: str
) -> dict[str, Any]:
    """The value written to `synod.dlq.replays` for one replayed dead letter."""
    d = entry.letter
    return {
        "dead_letter_id": entry.dead_letter_id,
        "replayed_at": at.isoformat(),
        "source_topic": d.source_topic,
        "partition": d.partition,
        "offset": d.offset,
        "copy_partition": copy_partition,
        "copy_offset": copy_offset,
        "original_message_id": d.original_message_id,
        "by": by,
    }
