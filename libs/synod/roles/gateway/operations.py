"""What the console shows beyond tasks, as the gateway's view reads it from Kafka.

The view consumer (`view.ViewConsumer`) reads, besides the tasks' topics,
`synod.heartbeats` and `synod.supervisor` (folded into a `Fleet`: the agents
page), and `synod.dlq` and `synod.dlq.replays` (folded into the same
`DeadLetterIndex` / `ReplayLog` `synod dlq` uses: the dead-letters page).
`Operations` holds those folds and wakes whoever waits for a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

from synod.core.deadletters import DeadLetterIndex, ReplayLog
from synod.core.fleet import Fleet
from synod.errors import DecodeError
from synod.wire import Codec, Envelope, Heartbeat
from synod.wire.messages import QuarantineNotice

log = logging.getLogger("synod.gateway")


class Operations:
    """Agents and dead letters, folded from their topics."""

    def __init__(self, codec: Codec | None = None) -> None:
        self.codec = codec or Codec()
        self.fleet = Fleet()
        self.dead_letters = DeadLetterIndex()
        self.replays = ReplayLog()
        self.unreadable = 0
        self._watchers: set[asyncio.Event] = set()

    # ------------------------------------------------------------ folding records

    def _decode(self, value: bytes | None) -> Envelope[Any] | None:
        try:
            return self.codec.decode(value if value is not None else b"")
        except DecodeError:
            self.unreadable += 1
            return None

    def heartbeat_record(self, value: bytes | None) -> None:
        envelope = self._decode(value)
        if envelope is not None and isinstance(envelope.body, Heartbeat):
            self.fleet.heartbeat(envelope.body, envelope.created_at.timestamp())
            self._changed()

    def supervisor_record(self, value: bytes | None) -> None:
        envelope = self._decode(value) if value is not None else None
        if envelope is not None and isinstance(envelope.body, QuarantineNotice):
            self.fleet.quarantine(envelope.body)
            self._changed()

    def dead_letter_record(self, value: bytes | None, partition: int, offset: int) -> None:
        envelope = self._decode(value)
        if envelope is not None and self.dead_letters.apply(envelope, partition, offset) is None:
            self.unreadable += 1
        self._changed()

    def replay_record(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        try:
            record = json.loads(value) if value is not None else None
        except ValueError:
            return  # not ours: a replay record is always a JSON object
        if record is None or isinstance(record, dict):
            self.replays.apply(key.decode(errors="replace"), record)
            self._changed()

    # ------------------------------------------------------------ waiting

    def _changed(self) -> None:
        for event in self._watchers:
            event.set()

    @contextlib.contextmanager
    def watch(self) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._watchers.add(event)
        try:
            yield event
        finally:
            self._watchers.discard(event)


__all__ = ["Operations"]
