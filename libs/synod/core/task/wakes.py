"""When each task next needs the time: a schedule of wake times, the due ones first.

A task decides on time alone only at the times it names (`TaskMachine.next_wake`:
its deadline, its next hedge, its escalation's timeout). So the planner tells a
task the time when its wake is due instead of stepping every task it holds every
second: a sweep costs the tasks due, not the tasks in memory (bench/scale.py).

A heap of (time, task) with lazy invalidation: `_at` holds each task's current
wake, and a heap entry that no longer matches it is dropped when it comes up.
A task that is due but cannot be stepped now (its partition is being rebuilt,
or is not held) is put aside under its group (the partition) by `hold`, and
`release` makes it due again once the group can be stepped: a partition that
stays away costs nothing per sweep.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import UTC, datetime

SOON = datetime.min.replace(tzinfo=UTC)  # before any time: due at the next sweep


class Wakes:
    """Task id -> its next wake; `due(now)` takes out the tasks whose wake has come."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []
        self._at: dict[str, datetime] = {}
        self._held: dict[int, dict[str, datetime]] = {}  # group -> task -> its wake
        self._group_of: dict[str, int] = {}  # a held task -> its group

    def __len__(self) -> int:
        """Tasks scheduled or held."""
        return len(self._at.keys() | self._group_of.keys())

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._at or task_id in self._group_of

    def when(self, task_id: str) -> datetime | None:
        """The task's wake as scheduled (not one held aside); None: none."""
        return self._at.get(task_id)

    def set(self, task_id: str, at: datetime | None) -> None:
        """The task's wake is now `at` (what its machine says after a step); None:
        it needs no time (finished, or nothing started), so it leaves the schedule."""
        if at is None:
            self.drop(task_id)
            return
        if self._at.get(task_id) == at:
            return
        self._at[task_id] = at
        heapq.heappush(self._heap, (at, task_id))
        if len(self._heap) > 2 * len(self._at) + 64:
            self._compact()

    def earliest(self, task_id: str, at: datetime) -> None:
        """Wake the task at `at` unless it is due earlier already."""
        current = self._at.get(task_id)
        if current is None or at < current:
            self.set(task_id, at)

    def soon(self, task_id: str) -> None:
        """Due at the next sweep, whatever it said before (folded, quarantine changed)."""
        self.earliest(task_id, SOON)

    def drop(self, task_id: str) -> None:
        """The task left memory: out of the schedule and of any group it was held in."""
        self._at.pop(task_id, None)  # its heap entries go stale
        group = self._group_of.pop(task_id, None)
        if group is not None:
            held = self._held[group]
            held.pop(task_id, None)
            if not held:
                del self._held[group]

    def due(self, now: datetime) -> list[tuple[str, datetime]]:
        """(task, wake) of every task whose wake is at or before `now`, earliest first;
        they leave the schedule (the caller sets each one's next wake once stepped,
        or `hold`s it)."""
        out: list[tuple[str, datetime]] = []
        while self._heap and self._heap[0][0] <= now:
            at, task_id = heapq.heappop(self._heap)
            if self._at.get(task_id) != at:
                continue  # stale: rescheduled or dropped since
            del self._at[task_id]
            out.append((task_id, at))
        return out

    def next_at(self) -> datetime | None:
        """The earliest wake scheduled (held ones aside); None: nothing scheduled."""
        while self._heap and self._at.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def hold(self, task_id: str, group: int, at: datetime) -> None:
        """A due task that cannot be stepped until `group` is released."""
        previous = self._group_of.get(task_id)
        if previous is not None and previous != group:
            at = min(at, self._held[previous].pop(task_id))
            if not self._held[previous]:
                del self._held[previous]
        held = self._held.setdefault(group, {})
        held[task_id] = min(at, held.get(task_id, at))
        self._group_of[task_id] = group

    def release(self, groups: Iterable[int]) -> int:
        """The tasks held under `groups` are scheduled again at their wake (or earlier,
        if they were rescheduled meanwhile); returns how many."""
        n = 0
        for group in groups:
            held = self._held.pop(group, None)
            if not held:
                continue
            for task_id, at in held.items():
                del self._group_of[task_id]
                self.earliest(task_id, at)
                n += 1
        return n

    def held(self) -> int:
        """Tasks held aside."""
        return len(self._group_of)

    def _compact(self) -> None:
        """Drop the stale entries (each reschedule leaves one behind)."""
        self._heap = [(at, task_id) for task_id, at in self._at.items()]
        heapq.heapify(self._heap)
