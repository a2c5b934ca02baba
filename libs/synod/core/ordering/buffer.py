"""The causal-delivery buffer: hand a message on only after every cause it names.

`offer(id, item, causes, now)` returns what may be delivered now, in order:
the item itself if each of its causes was delivered already, and then every
held item that was waiting only for it (and for those, transitively). An item
whose causes have not all come is held, never dropped:

- bounded in time: `expire(now)` releases an item held `timeout_s` with its
  still-missing causes named (`Release.missing`, reason "timeout"): a gap the
  caller marks (`causal_gap`) and counts, never a silent reorder;
- bounded in entries: offering into a full buffer first releases the oldest
  held item the same way (reason "overflow").

Release is delivery: a released id counts as delivered at once, so whatever
waits for it can follow in the same call. Offering an id that was delivered
(within the last `remember` deliveries) or is held is a duplicate, dropped.

Which causes to name is the caller's choice: only those that will reach this
consumer (a cause that travels on a topic it does not read would only ever
time out).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
Reason = Literal["ready", "timeout", "overflow"]


@dataclass(frozen=True)
class Release(Generic[T]):
    """One delivery: the item, and (on a gap) the causes it went without."""

    id: str
    item: T
    reason: Reason
    held_s: float
    missing: frozenset[str] = frozenset()

    @property
    def gap(self) -> bool:
        return bool(self.missing)


@dataclass
class BufferStats:
    delivered: int = 0
    held_then_delivered: int = 0  # waited for a cause that then came
    gaps: int = 0  # delivered without some cause (timeout or overflow)
    duplicates: int = 0
    max_held: int = 0


@dataclass
class _Held(Generic[T]):
    item: T
    offered_at: float
    seq: int
    missing: set[str] = field(default_factory=set)


class CausalBuffer(Generic[T]):
    def __init__(self, capacity: int = 10_000, timeout_s: float = 5.0, remember: int = 200_000):
        if capacity < 1 or remember < 1:
            raise ValueError("capacity and remember must be at least 1")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.capacity = capacity
        self.timeout_s = timeout_s
        self.remember = remember
        self.stats = BufferStats()
        self._delivered: OrderedDict[str, None] = OrderedDict()
        self._held: OrderedDict[str, _Held[T]] = OrderedDict()  # in offer order
        self._waiting: dict[str, set[str]] = {}  # cause id -> held ids missing it
        self._seq = 0

    def __len__(self) -> int:
        return len(self._held)

    def delivered(self, message_id: str) -> bool:
        return message_id in self._delivered

    def holding(self, message_id: str) -> bool:
        return message_id in self._held

    def next_deadline(self) -> float | None:
        """When the oldest held item times out (None: nothing held)."""
        for held in self._held.values():
            return held.offered_at + self.timeout_s
        return None

    def offer(
        self, message_id: str, item: T, causes: Iterable[str], now: float
    ) -> list[Release[T]]:
        if message_id in self._delivered or message_id in self._held:
            self.stats.duplicates += 1
            return []
        out: list[Release[T]] = []
        named = set(causes)
        named.discard(message_id)
        if any(c not in self._delivered for c in named) and len(self._held) >= self.capacity:
            # Make room first: what the oldest's release delivers may be a cause of this one.
            self._release_held(next(iter(self._held)), "overflow", now, out)
        missing = {c for c in named if c not in self._delivered}
        if not missing:
            self._deliver(Release(message_id, item, "ready", 0.0), out, now)
            return out
        self._seq += 1
        self._held[message_id] = _Held(item, now, self._seq, missing)
        for cause in missing:
            self._waiting.setdefault(cause, set()).add(message_id)
        self.stats.max_held = max(self.stats.max_held, len(self._held))
        return out

    def expire(self, now: float) -> list[Release[T]]:
        """Release every item held for `timeout_s` or longer, with its gap named."""
        out: list[Release[T]] = []
        while self._held:
            oldest_id, oldest = next(iter(self._held.items()))
            if now - oldest.offered_at < self.timeout_s:
                break
            self._release_held(oldest_id, "timeout", now, out)
        return out

    def drain(self, now: float) -> list[Release[T]]:
        """Release everything held (shutting down), gaps named."""
        out: list[Release[T]] = []
        while self._held:
            self._release_held(next(iter(self._held)), "timeout", now, out)
        return out

    # ------------------------------------------------------------ inside

    def _release_held(
        self, message_id: str, reason: Reason, now: float, out: list[Release[T]]
    ) -> None:
        held = self._held.pop(message_id)
        for cause in held.missing:
            waiters = self._waiting.get(cause)
            if waiters is not None:
                waiters.discard(message_id)
                if not waiters:
                    del self._waiting[cause]
        release = Release(
            message_id, held.item, reason, now - held.offered_at, frozenset(held.missing)
        )
        self._deliver(release, out, now)

    def _deliver(self, first: Release[T], out: list[Release[T]], now: float) -> None:
        queue = [first]
        while queue:
            release = queue.pop(0)
            out.append(release)
            self.stats.delivered += 1
            if release.gap:
                self.stats.gaps += 1
            elif release is not first or release.held_s > 0:
                self.stats.held_then_delivered += 1
            self._delivered[release.id] = None
            while len(self._delivered) > self.remember:
                self._delivered.popitem(last=False)
            unblocked = []
            for waiter in self._waiting.pop(release.id, ()):
                held = self._held[waiter]
                held.missing.discard(release.id)
                if not held.missing:
                    unblocked.append((held.seq, waiter, held))
            # Offer order among the items one delivery unblocks: deterministic output.
            for _, waiter, held in sorted(unblocked, key=lambda u: u[0]):
                del self._held[waiter]
                queue.append(Release(waiter, held.item, "ready", now - held.offered_at))
