"""Key-ordered scheduling of work items (sans-I/O).

The algorithm of Confluent's Parallel Consumer in KEY mode: items queue per
key; at most one item per key is in flight, always the oldest; any number of
keys run at once up to a global bound set by the caller. One task's messages
(one key) stay in order while many tasks progress in parallel.

Keys become ready in the order their head items arrived, so no key starves.
The queue knows nothing about Kafka; the consumer and the in-memory transport
both drive it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class KeyQueue(Generic[Item]):
    def __init__(self) -> None:
        self._queues: dict[Hashable, deque[Item]] = {}
        self._ready: deque[Hashable] = deque()
        self._busy: set[Hashable] = set()
        self._size = 0

    def push(self, key: Hashable, item: Item) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            if key not in self._busy:
                self._ready.append(key)
        queue.append(item)
        self._size += 1

    def pop_ready(self) -> tuple[Hashable, Item] | None:
        """The oldest item of the next ready key; that key is busy until `done(key)`."""
        while self._ready:
            key = self._ready.popleft()
            queue = self._queues.get(key)
            if not queue:
                continue
            item = queue.popleft()
            if not queue:
                del self._queues[key]
            self._busy.add(key)
            self._size -= 1
            return key, item
        return None

    def done(self, key: Hashable) -> None:
        """The in-flight item of `key` finished; its next item may go."""
        self._busy.discard(key)
        if key in self._queues:
            self._ready.append(key)

    def drop_all(self) -> list[Item]:
        """Remove every queued item (not the in-flight ones), e.g. on revocation."""
        items = [item for queue in self._queues.values() for item in queue]
        self._queues.clear()
        self._ready.clear()
        self._size = 0
        return items

    @property
    def queued(self) -> int:
        return self._size

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    def has_ready(self) -> bool:
        return any(self._queues.get(k) for k in self._ready)
