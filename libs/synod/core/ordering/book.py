"""One process's clocks: a vector clock per task, a Lamport counter, an HLC.

`ClockBook` is what a service keeps to stamp what it sends and merge what it
handles. Vector clocks are per task and hold an entry only for the instances
that touched the task (its participants), so they stay small. Books are
bounded: the least recently used tasks and message locations are forgotten
(a forgotten task restarts from the next clock it receives, which is enough
for every effect to dominate its causes: an instance always merges a cause
before it sends what the cause caused).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from synod.core.ordering.hlc import DEFAULT_MAX_SKEW_MS, HLC, HLCReading
from synod.core.ordering.vclock import increment, merge


@dataclass(frozen=True)
class Stamp:
    """The clock fields of one envelope being sent."""

    vclock: dict[str, int]
    lamport: int
    hlc: int
    causes: list[str]
    cause_topics: dict[str, str]


class ClockBook:
    def __init__(
        self,
        participant: str,
        *,
        max_tasks: int = 20_000,
        max_locations: int = 200_000,
        max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    ) -> None:
        if not participant:
            raise ValueError("a clock book needs the participant's name (its instance id)")
        self.participant = participant
        self.max_tasks = max_tasks
        self.max_locations = max_locations
        self.lamport = 0
        self.hlc = HLC(max_skew_ms)
        self._tasks: OrderedDict[str, dict[str, int]] = OrderedDict()
        self._where: OrderedDict[str, str] = OrderedDict()  # message id -> topic seen on

    def vclock(self, task_id: str) -> dict[str, int]:
        return dict(self._tasks.get(task_id, {}))

    def location(self, message_id: str) -> str | None:
        return self._where.get(message_id)

    def send(
        self,
        task_id: str | None,
        message_id: str,
        topic: str,
        causes: Iterable[str],
        now_ms: int,
    ) -> Stamp:
        """Tick for one send: the task's clock gains one at this participant."""
        self.lamport += 1
        hlc = self.hlc.send(now_ms)
        clock: dict[str, int] = {}
        if task_id is not None:
            clock = increment(self._tasks.get(task_id, {}), self.participant)
            self._remember_task(task_id, clock)
        named = list(dict.fromkeys(causes))
        topics = {c: t for c in named if (t := self._where.get(c)) is not None}
        self._locate(message_id, topic)
        return Stamp(clock, self.lamport, hlc, named, topics)

    def receive(
        self,
        task_id: str | None,
        message_id: str,
        topic: str,
        vclock: Mapping[str, int],
        lamport: int,
        hlc: int,
        now_ms: int,
    ) -> HLCReading | None:
        """Merge a handled message's clocks; the HLC reading says if its time was clamped."""
        self.lamport = max(self.lamport, lamport)
        if task_id is not None and vclock:
            self._remember_task(task_id, merge(self._tasks.get(task_id, {}), vclock))
        self._locate(message_id, topic)
        return self.hlc.receive(hlc, now_ms) if hlc else None

    def locate(self, message_id: str, topic: str) -> None:
        """Note where a message was seen (a copy sent on without a new stamp)."""
        self._locate(message_id, topic)

    def _remember_task(self, task_id: str, clock: dict[str, int]) -> None:
        self._tasks[task_id] = clock
        self._tasks.move_to_end(task_id)
        while len(self._tasks) > self.max_tasks:
            self._tasks.popitem(last=False)

    def _locate(self, message_id: str, topic: str) -> None:
        # The first place counts: a forwarded copy (the planner's log -> a work topic)
        # keeps naming the log, where every reader of the task can find it.
        if message_id not in self._where:
            self._where[message_id] = topic
            while len(self._where) > self.max_locations:
                self._where.popitem(last=False)
