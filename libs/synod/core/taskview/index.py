"""The views of many tasks, bounded by count, least recently updated evicted first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from synod.core.taskview.view import TaskView
from synod.wire.messages import Envelope

DEFAULT_CAPACITY = 10_000


class TaskIndex:
    """Task id -> TaskView, bounded: the least recently updated task goes first.

    The bound is on tasks, not bytes; a view keeps its envelopes (the gateway
    replays them to event streams), so memory is about tasks x events x size.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.evicted = 0
        self._views: OrderedDict[str, TaskView] = OrderedDict()

    def apply(self, envelope: Envelope[Any], log_offset: int | None = None) -> TaskView | None:
        """Fold an envelope into its task's view; the view if it changed, else None.

        Envelopes without a task id (heartbeats, dead letters) are ignored.
        """
        task_id = envelope.task_id
        if task_id is None:
            return None
        view = self._views.get(task_id)
        if view is None:
            view = self._views[task_id] = TaskView(task_id)
        if not view.apply(envelope, log_offset):
            return None
        self._views.move_to_end(task_id)
        while len(self._views) > self.capacity:
            self._views.popitem(last=False)
            self.evicted += 1
        return view

    def get(self, task_id: str) -> TaskView | None:
        return self._views.get(task_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._views

    def __len__(self) -> int:
        return len(self._views)

    def __iter__(self) -> Iterator[TaskView]:
        """Views, most recently updated first."""
        return reversed(list(self._views.values()))
