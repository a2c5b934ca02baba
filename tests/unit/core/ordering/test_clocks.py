"""The clock algebra: vector clocks form a join semilattice ordered by happens-before,
and the HLC never goes backwards, stays near physical time and orders cause before effect."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.ordering import HLC, Order, compare, dominates, increment, merge, pack, unpack
from synod.core.ordering.hlc import LOGICAL_MAX

names = st.sampled_from(["planner-0", "coder-1", "coder-2", "reviewer-0", "consensus-0"])
clocks = st.dictionaries(names, st.integers(min_value=1, max_value=50), max_size=5)


@given(clocks, clocks)
def test_merge_is_commutative_and_an_upper_bound(a: dict[str, int], b: dict[str, int]) -> None:
    m = merge(a, b)
    assert m == merge(b, a)
    assert dominates(m, a)
    assert dominates(m, b)
    # the least upper bound: every entry comes from one side
    assert all(m[k] == max(a.get(k, 0), b.get(k, 0)) for k in m)


@given(clocks, clocks, clocks)
def test_merge_is_associative_and_idempotent(a: dict, b: dict, c: dict) -> None:
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    assert merge(a, a) == a


@given(clocks, clocks)
def test_compare_is_antisymmetric(a: dict[str, int], b: dict[str, int]) -> None:
    mirror = {Order.BEFORE: Order.AFTER, Order.AFTER: Order.BEFORE}
    got, back = compare(a, b), compare(b, a)
    assert back == mirror.get(got, got)
    assert (got == Order.EQUAL) == (a == b)


@given(clocks, names)
def test_a_send_happens_after_what_it_saw(a: dict[str, int], who: str) -> None:
    after = increment(a, who)
    assert compare(a, after) == Order.BEFORE
    assert compare(after, a) == Order.AFTER


@given(clocks, clocks, names, names)
def test_two_sends_from_one_past_by_two_participants_are_concurrent(
    a: dict, b: dict, x: str, y: str
) -> None:
    base = merge(a, b)
    if x != y:
        assert compare(increment(base, x), increment(base, y)) == Order.CONCURRENT


def test_named_cases() -> None:
    assert compare({"a": 1}, {"a": 1, "b": 1}) == Order.BEFORE
    assert compare({"a": 2}, {"a": 1, "b": 1}) == Order.CONCURRENT
    assert compare({}, {}) == Order.EQUAL
    with pytest.raises(ValueError, match="needs a name"):
        increment({}, "")


# ---------------------------------------------------------------- HLC

events = st.lists(
    st.tuples(
        st.sampled_from(["send", "receive"]),
        st.integers(min_value=0, max_value=50),  # physical clock step (ms)
        st.integers(min_value=-5_000, max_value=5_000),  # remote's offset from us (ms)
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(events)
def test_hlc_is_monotonic_and_close_to_physical_time(steps: list) -> None:
    clock = HLC(max_skew_ms=10_000)
    now, last = 1_000_000, 0
    for kind, step, offset in steps:
        now += step
        if kind == "send":
            stamp = clock.send(now)
        else:
            remote = pack(now + offset, 3)
            reading = clock.receive(remote, now)
            assert not reading.clamped
            assert reading.stamp > remote  # cause before effect
            stamp = reading.stamp
        assert stamp > last
        wall, _ = unpack(stamp)
        assert now <= wall <= now + 5_000 + 1  # never ahead by more than the others were
        last = stamp


def test_hlc_clamps_a_clock_beyond_the_skew_bound() -> None:
    clock = HLC(max_skew_ms=1_000)
    remote = pack(10_000_000, 0)
    reading = clock.receive(remote, now_ms=1_000)
    assert reading.clamped
    assert reading.skew_ms == 10_000_000 - 1_000
    assert unpack(reading.stamp)[0] == 2_000  # at most the bound ahead, not the forger's time
    assert reading.stamp < remote  # the cost, on that one edge: synod check reports it


def test_hlc_logical_overflow_borrows_the_next_millisecond() -> None:
    clock = HLC()
    clock.receive(pack(5, LOGICAL_MAX), 5)
    assert unpack(clock.stamp) == (6, 0)
    with pytest.raises(ValueError, match="out of range"):
        pack(1, LOGICAL_MAX + 1)
    with pytest.raises(ValueError, match="positive"):
        HLC(max_skew_ms=0)
