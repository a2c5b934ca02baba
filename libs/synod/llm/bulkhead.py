"""Bulkheads: a bound on how many calls of one kind are in flight, waiters served in order.

`BulkheadCore` is the sans-I/O part: tickets enter, are admitted or queued
(first come, first served), leave, or give up waiting. `Bulkhead` is the thin
asyncio adapter: `async with bulkhead.slot(deadline=...)` waits for a slot no
longer than the caller's deadline, so the wait counts against the step's own
deadline instead of extending it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field


@dataclass
class BulkheadCore:
    limit: int
    _in_use: set[int] = field(default_factory=set)
    _queue: deque[int] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"a bulkhead limit must be >= 1, not {self.limit}")

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def enter(self, ticket: int) -> bool:
        """True: admitted now. False: queued; `leave` of another ticket admits it later."""
        if ticket in self._in_use or ticket in self._queue:
            raise ValueError(f"ticket {ticket} already entered")
        # Nobody overtakes a waiter: a free slot with a queue goes to the queue.
        if len(self._in_use) < self.limit and not self._queue:
            self._in_use.add(ticket)
            return True
        self._queue.append(ticket)
        return False

    def leave(self, ticket: int) -> list[int]:
        """The ticket's call ended; returns the waiters admitted into the freed slot."""
        self._in_use.discard(ticket)
        admitted: list[int] = []
        while self._queue and len(self._in_use) < self.limit:
            nxt = self._queue.popleft()
            self._in_use.add(nxt)
            admitted.append(nxt)
        return admitted

    def abandon(self, ticket: int) -> list[int]:
        """A waiter gave up (its deadline passed); if it had just been admitted, pass it on."""
        if ticket in self._queue:
            self._queue.remove(ticket)
            return []
        return self.leave(ticket)


class BulkheadFull(TimeoutError):
    """The deadline passed while waiting for a slot."""


class Bulkhead:
    """asyncio adapter around `BulkheadCore`; `on_change(in_use, waited)` feeds metrics."""

    def __init__(
        self,
        name: str,
        limit: int,
        *,
        on_change: Callable[[int, bool], None] | None = None,
    ) -> None:
        self.name = name
        self.core = BulkheadCore(limit)
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._tickets = itertools.count()
        self._on_change = on_change or (lambda in_use, waited: None)

    @property
    def limit(self) -> int:
        return self.core.limit

    def _wake(self, admitted: list[int]) -> None:
        for ticket in admitted:
            fut = self._waiters.pop(ticket, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    @contextlib.asynccontextmanager
    async def slot(self, *, deadline: float | None = None) -> AsyncIterator[None]:
        """Hold one slot for the body; `deadline` is in the loop's clock (loop.time())."""
        loop = asyncio.get_running_loop()
        ticket = next(self._tickets)
        waited = False
        if not self.core.enter(ticket):
            waited = True
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters[ticket] = fut
            try:
                async with asyncio.timeout_at(deadline):
                    await fut
            except BaseException as exc:
                self._waiters.pop(ticket, None)
                self._wake(self.core.abandon(ticket))
                if isinstance(exc, TimeoutError):
                    raise BulkheadFull(
                        f"no {self.name} slot free before the deadline ({self.limit} in use)"
                    ) from None
                raise
        self._on_change(self.core.in_use, waited)
        try:
            yield
        finally:
            self._wake(self.core.leave(ticket))
            self._on_change(self.core.in_use, False)
