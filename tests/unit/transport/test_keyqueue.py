"""Key-ordered scheduling: one in flight per key, in order; keys interleave fairly."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from synod.transport.dedup import DedupWindow
from synod.transport.keyqueue import KeyQueue


def test_one_item_per_key_in_flight_in_order() -> None:
    q: KeyQueue[int] = KeyQueue()
    for i, key in enumerate("aabab"):
        q.push(key, i)
    assert q.pop_ready() == ("a", 0)
    assert q.pop_ready() == ("b", 2)
    assert q.pop_ready() is None  # both keys busy
    q.done("a")
    assert q.pop_ready() == ("a", 1)
    q.done("b")
    assert q.pop_ready() == ("b", 4)
    q.done("a")
    assert q.pop_ready() == ("a", 3)
    assert q.queued == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=200), st.randoms(use_true_random=False))
def test_random_completion_order_keeps_each_key_in_order(
    keys: list[int], rng: random.Random
) -> None:
    q: KeyQueue[int] = KeyQueue()
    for i, key in enumerate(keys):
        q.push(key, i)
    in_flight: dict[int, int] = {}
    handled: dict[int, list[int]] = {}
    while True:
        while (nxt := q.pop_ready()) is not None:
            key, item = nxt
            assert key not in in_flight
            in_flight[key] = item
        if not in_flight:
            break
        key = rng.choice(sorted(in_flight))
        handled.setdefault(key, []).append(in_flight.pop(key))
        q.done(key)
    for key, items in handled.items():
        assert items == [i for i, k in enumerate(keys) if k == key]
    assert sum(map(len, handled.values())) == len(keys)


def test_drop_all_leaves_in_flight_alone() -> None:
    q: KeyQueue[int] = KeyQueue()
    for i in range(4):
        q.push(i % 2, i)
    assert q.pop_ready() == (0, 0)
    assert sorted(q.drop_all()) == [1, 2, 3]
    assert q.in_flight == 1
    assert q.pop_ready() is None


def test_dedup_window_is_bounded() -> None:
    window = DedupWindow(capacity=3)
    for m in "abc":
        assert not window.seen(m)
        window.add(m)
    assert window.seen("a")
    window.add("d")  # evicts the least recently seen: b
    assert not window.seen("b")
    assert window.seen("c")
    assert len(window) == 3
