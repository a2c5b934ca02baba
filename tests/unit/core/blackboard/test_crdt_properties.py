"""The blackboard is a CRDT: its merge is a join, so any delivery order converges.

Hypothesis draws boards and operation logs; the laws are checked on the
boards themselves (state-based) and on operations applied one by one in any
order with any duplicates (how a task's log is folded after redeliveries).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.blackboard import Blackboard, Fact, parse, render, resolve_key

KEYS = ["approach", "limit", "source"]
# Small domains (8 tags, 3 keys, 3 values) make collisions, re-adds and early
# tombstones common, so a few dozen examples per law reach the cases that matter.
LAWS = settings(max_examples=40, deadline=None)
VALUES = ["a", "b", "c"]


@st.composite
def facts(draw: st.DrawFn) -> Fact:
    return Fact(
        fact_id=draw(st.sampled_from([f"f{i}" for i in range(8)])),
        key=draw(st.sampled_from(KEYS)),
        value=draw(st.sampled_from(VALUES)),
        confidence=draw(st.sampled_from([0.3, 0.6, 0.9])),
        step_id=draw(st.sampled_from(["r1", "r2"])),
    )


@st.composite
def operations(draw: st.DrawFn) -> tuple[Fact, tuple[str, ...]]:
    fact = draw(facts())
    observed = draw(st.lists(st.sampled_from([f"f{i}" for i in range(8)]), max_size=3))
    return fact, tuple(observed)


@st.composite
def boards(draw: st.DrawFn) -> Blackboard:
    board = Blackboard()
    for fact, observed in draw(st.lists(operations(), max_size=6)):
        board = board.add(fact, observed)
    return board


@LAWS
@given(boards(), boards())
def test_merge_is_commutative(a: Blackboard, b: Blackboard) -> None:
    assert a.merge(b) == b.merge(a)


@LAWS
@given(boards(), boards(), boards())
def test_merge_is_associative(a: Blackboard, b: Blackboard, c: Blackboard) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@LAWS
@given(boards())
def test_merge_is_idempotent(a: Blackboard) -> None:
    assert a.merge(a) == a
    assert a.merge(Blackboard()) == a


@LAWS
@given(boards(), boards())
def test_merge_only_grows(a: Blackboard, b: Blackboard) -> None:
    """The join is an upper bound: nothing either side added or removed is lost."""
    joined = a.merge(b)
    assert set(a.adds) | set(b.adds) == set(joined.adds)
    assert a.removed | b.removed == joined.removed


@settings(max_examples=100, deadline=None)
@given(st.lists(operations(), min_size=1, max_size=8), st.data())
def test_any_delivery_order_with_duplicates_converges(
    ops: list[tuple[Fact, tuple[str, ...]]], data: st.DataObject
) -> None:
    """Replicas folding the same operations in any order, redelivered any number of
    times, end with the same board, the same live facts and the same resolution."""
    in_order = Blackboard()
    for fact, observed in ops:
        in_order = in_order.add(fact, observed)
    redelivered = ops + data.draw(st.lists(st.sampled_from(ops), max_size=6))
    shuffled = data.draw(st.permutations(redelivered))
    other = Blackboard()
    for fact, observed in shuffled:
        other = other.add(fact, observed)
    assert other == in_order
    assert other.live() == in_order.live()
    assert other.resolved() == in_order.resolved()
    assert other.conflicts() == in_order.conflicts()


def _fact(tag: str, key: str, value: str, confidence: float = 0.5) -> Fact:
    return Fact(fact_id=tag, key=key, value=value, confidence=confidence)


def test_an_observed_fact_is_replaced_a_concurrent_one_is_kept() -> None:
    first = Blackboard().add(_fact("f1", "approach", "a"))
    overwritten = first.add(_fact("f2", "approach", "b"), observed=["f1"])
    assert [f.value for f in overwritten.values("approach")] == ["b"]
    assert overwritten.conflicts() == {}
    # f3 was written without seeing f1: the writes are concurrent, both stay.
    concurrent = first.merge(Blackboard.of(_fact("f3", "approach", "c")))
    assert sorted(f.value for f in concurrent.values("approach")) == ["a", "c"]
    assert set(concurrent.conflicts()) == {"approach"}


def test_add_wins_over_a_remove_that_did_not_observe_it() -> None:
    """Observed-remove: a remove takes only the tags its writer saw, never a later add."""
    board = Blackboard().add(_fact("f1", "k", "a"))
    reconciled = board.add(_fact("f2", "k", "b"), observed=["f1"])
    late = reconciled.merge(Blackboard.of(_fact("f3", "k", "c")))
    assert {f.fact_id for f in late.values("k")} == {"f2", "f3"}


def test_a_tombstone_before_its_add_removes_it_on_arrival() -> None:
    tomb_first = Blackboard().add(_fact("f2", "k", "b"), observed=["f1"])
    assert tomb_first.add(_fact("f1", "k", "a")).ids() == frozenset({"f2"})


def test_resolve_key_is_highest_confidence_then_smallest_tag() -> None:
    low, high, tie = (
        _fact("f9", "k", "a", 0.4),
        _fact("f5", "k", "b", 0.9),
        _fact("f1", "k", "c", 0.9),
    )
    assert resolve_key([low, high]) == high
    assert resolve_key([low, high, tie]) == tie


@LAWS
@given(boards())
def test_render_parse_round_trip(board: Blackboard) -> None:
    parsed = parse(render(board.live()))
    assert [(p.fact_id, p.key, p.value, p.confidence) for p in parsed] == [
        (f.fact_id, f.key, f.value, f.confidence) for f in board.live()
    ]


def test_parse_skips_lines_that_are_not_facts() -> None:
    text = (
        'notes\n- fact {not json}\n- fact {"id": "f1", "key": "k", "value": "v", "confidence": 0.5}'
    )
    assert [p.fact_id for p in parse(text)] == ["f1"]
