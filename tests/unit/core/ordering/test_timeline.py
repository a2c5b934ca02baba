"""The causal timeline: a linear extension of happens-before, concurrent branches by depth."""

from __future__ import annotations

from dataclasses import dataclass, field

from synod.core.ordering.timeline import timeline


@dataclass
class Event:
    message_id: str
    vclock: dict[str, int] = field(default_factory=dict)
    hlc: int = 0
    lamport: int = 0


def test_a_diamond_has_two_concurrent_branches() -> None:
    # a -> b (coder-1), a -> c (coder-2), b + c -> d; given out of order, c with the lower HLC
    a = Event("a", {"p": 1}, hlc=10)
    b = Event("b", {"p": 1, "c1": 1}, hlc=30)
    c = Event("c", {"p": 1, "c2": 1}, hlc=20)
    d = Event("d", {"p": 2, "c1": 1, "c2": 1}, hlc=40)
    events = [d, b, a, c]
    rows = timeline(events)
    assert [events[r.index].message_id for r in rows] == ["a", "c", "b", "d"]
    assert [r.depth for r in rows] == [0, 1, 1, 2]
    by_id = {events[r.index].message_id: r for r in rows}
    assert [events[i].message_id for i in by_id["b"].concurrent] == ["c"]
    assert sorted(events[i].message_id for i in by_id["d"].after) == ["b", "c"]
    assert [events[i].message_id for i in by_id["b"].after] == ["a"]
    assert by_id["a"].concurrent == ()


def test_events_without_vector_clocks_go_by_hlc() -> None:
    events = [Event("late", hlc=5), Event("early", hlc=1)]
    assert [events[r.index].message_id for r in timeline(events)] == ["early", "late"]
