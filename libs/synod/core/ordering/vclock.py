"""Vector clocks as plain `{participant: counter}` dicts (what the envelope carries).

A missing entry means 0, so clocks only hold the participants that touched a
task. Every function returns a new dict; none mutates its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

VClock = Mapping[str, int]


class Order(Enum):
    """How two clocks relate: a happened-before b, after it, the same, or concurrent."""

    BEFORE = "before"
    AFTER = "after"
    EQUAL = "equal"
    CONCURRENT = "concurrent"


def increment(clock: VClock, participant: str) -> dict[str, int]:
    """The clock after `participant` does one more thing (send)."""
    if not participant:
        raise ValueError("a vector clock participant needs a name")
    out = dict(clock)
    out[participant] = out.get(participant, 0) + 1
    return out


def merge(a: VClock, b: VClock) -> dict[str, int]:
    """The least clock that is at or after both (entry-wise max; receive)."""
    out = dict(a)
    for name, count in b.items():
        if count > out.get(name, 0):
            out[name] = count
    return {name: count for name, count in out.items() if count > 0}


def dominates(a: VClock, b: VClock) -> bool:
    """a >= b entry-wise: everything b saw, a saw too."""
    return all(a.get(name, 0) >= count for name, count in b.items())


def compare(a: VClock, b: VClock) -> Order:
    """Order of a relative to b (BEFORE: a happened-before b)."""
    a_ge, b_ge = dominates(a, b), dominates(b, a)
    if a_ge and b_ge:
        return Order.EQUAL
    if b_ge:
        return Order.BEFORE
    if a_ge:
        return Order.AFTER
    return Order.CONCURRENT
