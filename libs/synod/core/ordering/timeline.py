"""A task's events in causal order, with concurrent branches made visible.

`timeline` takes events carrying their clocks and returns them in a linear
extension of happens-before (by vector clock; HLC, then Lamport, break ties
between concurrent events), each with its causal depth: one more than the
deepest event that happened before it. Events of one depth are pairwise not
ordered by happens-before, so a depth holding several events is a set of
concurrent branches (e.g. two coders' steps running side by side).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from synod.core.ordering.vclock import Order, compare


class Stamped(Protocol):
    @property
    def message_id(self) -> str: ...
    @property
    def vclock(self) -> Mapping[str, int]: ...
    @property
    def hlc(self) -> int: ...
    @property
    def lamport(self) -> int: ...


@dataclass(frozen=True)
class TimelineRow:
    index: int  # position in the event list given
    depth: int
    concurrent: tuple[int, ...]  # indexes (into the list given) of events concurrent with it
    after: tuple[int, ...]  # indexes of the events it directly follows (its frontier)


def timeline(events: Sequence[Stamped]) -> list[TimelineRow]:
    """Rows in causal order; events without a vector clock go by HLC/Lamport alone."""
    n = len(events)
    before: list[set[int]] = [set() for _ in range(n)]  # before[j]: events that happened-before j
    for i in range(n):
        for j in range(n):
            if i != j and _before(events[i], events[j]):
                before[j].add(i)
    order = sorted(range(n), key=lambda k: (len(before[k]), events[k].hlc, events[k].lamport, k))
    depth: dict[int, int] = {}
    for k in order:
        depth[k] = 1 + max((depth[i] for i in before[k] if i in depth), default=-1)
    order.sort(key=lambda k: (depth[k], events[k].hlc, events[k].lamport, k))
    rows = []
    for k in order:
        concurrent = tuple(
            i for i in range(n) if i != k and k not in before[i] and i not in before[k]
        )
        # The direct predecessors: before k, and not before another predecessor of k.
        frontier = tuple(sorted(i for i in before[k] if not any(i in before[m] for m in before[k])))
        rows.append(TimelineRow(k, depth[k], concurrent, frontier))
    return rows


def _before(a: Stamped, b: Stamped) -> bool:
    if a.vclock and b.vclock:
        return compare(a.vclock, b.vclock) is Order.BEFORE
    if a.hlc and b.hlc:
        return a.hlc < b.hlc
    return 0 < a.lamport < b.lamport
