"""The causal-delivery buffer under random histories, interleavings, duplicates and drops:
nothing delivered before its causes (unless marked as a gap), nothing held past the
bound, nothing lost, nothing delivered twice."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.ordering import CausalBuffer, Release


def history(rng: random.Random, n: int) -> dict[str, list[str]]:
    """A random causal history: each message names some earlier ones as causes."""
    ids = [f"m{i}" for i in range(n)]
    return {mid: rng.sample(ids[:i], k=min(i, rng.randint(0, 3))) for i, mid in enumerate(ids)}


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(1, 40),
    capacity=st.integers(1, 12),
    drop=st.floats(0, 0.3),
    dup=st.floats(0, 0.3),
)
def test_delivery_respects_happens_before(
    seed: int, n: int, capacity: int, drop: float, dup: float
) -> None:
    rng = random.Random(seed)
    causes = history(rng, n)
    arrivals = [m for m in causes if rng.random() >= drop]  # some never come
    arrivals += [m for m in arrivals if rng.random() < dup]  # some come twice
    rng.shuffle(arrivals)
    timeout = 5.0
    buf: CausalBuffer[str] = CausalBuffer(capacity=capacity, timeout_s=timeout)
    out: list[Release[str]] = []
    now = 0.0
    for mid in arrivals:
        now += rng.choice([0.0, 0.5, 1.0, 3.0])
        out += buf.expire(now)
        out += buf.offer(mid, mid, causes[mid], now)
        assert len(buf) <= capacity  # bound in entries
    for _ in range(int(timeout) + 1):
        now += 1.0
        out += buf.expire(now)
    assert len(buf) == 0  # nothing held forever

    delivered = [r.id for r in out]
    assert len(delivered) == len(set(delivered))  # nothing twice
    assert set(delivered) == set(arrivals)  # nothing lost
    seen: set[str] = set()
    for r in out:
        before = {c for c in causes[r.id]}
        if r.gap:
            assert r.missing <= before
            assert not (r.missing & seen)
            assert r.reason in ("timeout", "overflow")
        # every cause not named missing was delivered first
        assert before - r.missing <= seen
        if r.reason == "timeout":
            assert r.held_s >= timeout
        assert r.held_s <= timeout + 3.0  # held no longer than the bound plus one step
        seen.add(r.id)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 30))
def test_without_drops_and_with_room_there_is_no_gap(seed: int, n: int) -> None:
    rng = random.Random(seed)
    causes = history(rng, n)
    arrivals = list(causes)
    rng.shuffle(arrivals)
    buf: CausalBuffer[str] = CausalBuffer(capacity=n, timeout_s=60.0)
    out = [r for mid in arrivals for r in buf.offer(mid, mid, causes[mid], 0.0)]
    assert [r for r in out if r.gap] == []
    position = {r.id: i for i, r in enumerate(out)}
    for mid, cs in causes.items():
        assert all(position[c] < position[mid] for c in cs)


def test_an_effect_waits_for_its_cause_then_follows_it() -> None:
    buf: CausalBuffer[str] = CausalBuffer(timeout_s=5.0)
    assert buf.offer("effect", "E", ["cause"], now=0.0) == []
    assert buf.holding("effect")
    assert buf.next_deadline() == 5.0
    out = buf.offer("cause", "C", [], now=1.5)
    assert [(r.id, r.gap) for r in out] == [("cause", False), ("effect", False)]
    assert out[1].held_s == 1.5
    assert buf.stats.held_then_delivered == 1


def test_a_missing_cause_becomes_a_named_gap_at_the_time_bound() -> None:
    buf: CausalBuffer[str] = CausalBuffer(timeout_s=2.0)
    buf.offer("effect", "E", ["lost"], now=0.0)
    assert buf.expire(1.9) == []
    (r,) = buf.expire(2.0)
    assert r.gap
    assert r.missing == frozenset({"lost"})
    assert r.reason == "timeout"
    assert buf.stats.gaps == 1
    # the cause arriving late is still delivered, once
    assert [x.id for x in buf.offer("lost", "L", [], 3.0)] == ["lost"]
    assert buf.offer("lost", "L", [], 3.0) == []
    assert buf.stats.duplicates == 1


def test_a_full_buffer_releases_its_oldest_as_an_overflow_gap() -> None:
    buf: CausalBuffer[str] = CausalBuffer(capacity=1, timeout_s=60.0)
    buf.offer("a", "a", ["x"], 0.0)
    (r,) = buf.offer("b", "b", ["y"], 1.0)
    assert (r.id, r.reason, r.missing) == ("a", "overflow", frozenset({"x"}))
    assert len(buf) == 1


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CausalBuffer(capacity=0)
    with pytest.raises(ValueError, match="positive"):
        CausalBuffer(timeout_s=0)
