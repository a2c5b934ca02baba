"""A bounded window of message ids already handled (sans-I/O).

Kafka delivers at least once: a producer retry, a replay or a redelivery after
a crash can bring a message twice. Handlers are idempotent by message id; the
window drops duplicates before they reach a handler. It is bounded, because
duplicates arrive close to their originals, and memory is not.
"""

from __future__ import annotations

from collections import OrderedDict


class DedupWindow:
    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def seen(self, message_id: str) -> bool:
        """True if a message with this id was already handled (within the window)."""
        if message_id in self._seen:
            self._seen.move_to_end(message_id)
            return True
        return False

    def add(self, message_id: str) -> None:
        """Remember an id once its message has been handled, not before: a message
        dropped unhandled (say, on revocation) must still be handled when redelivered."""
        self._seen[message_id] = None
        self._seen.move_to_end(message_id)
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
