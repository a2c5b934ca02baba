"""Version vectors (a partial order with joins) and the lease table (fencing, expiry)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.workspace import Lease, LeaseDenied, LeaseTable, VersionVector

VV = VersionVector.of
vectors = st.dictionaries(st.sampled_from("abc"), st.integers(0, 3)).map(VV)


def test_vectors_are_canonical() -> None:
    assert VV({"b": 1, "a": 2, "c": 0}) == VV({"a": 2, "b": 1})
    assert hash(VV({"b": 1, "a": 2})) == hash(VV({"a": 2, "b": 1}))
    assert VV({"a": 2}).get("z") == 0
    assert str(VV({"b": 1, "a": 2})) == "{a:2, b:1}"
    with pytest.raises(ValueError, match="negative"):
        VV({"a": -1})
    with pytest.raises(ValueError, match="twice"):
        VersionVector((("a", 1), ("a", 2)))


def test_covers_and_concurrent() -> None:
    a1, a1b1, b1 = VV({"a": 1}), VV({"a": 1, "b": 1}), VV({"b": 1})
    assert a1b1.covers(a1)
    assert a1b1.covers(b1)
    assert a1.covers(VersionVector())
    assert not a1.covers(a1b1)
    assert a1.concurrent(b1)
    assert not a1.concurrent(a1b1)
    assert a1.join(b1) == a1b1
    assert a1.with_entry("a", 5) == VV({"a": 5})


@settings(derandomize=True)
@given(vectors, vectors, vectors)
def test_covers_is_a_partial_order_and_join_the_least_upper_bound(
    x: VersionVector, y: VersionVector, z: VersionVector
) -> None:
    assert x.covers(x)
    if x.covers(y) and y.covers(x):
        assert x == y
    if x.covers(y) and y.covers(z):
        assert x.covers(z)
    j = x.join(y)
    assert j.covers(x)
    assert j.covers(y)
    if z.covers(x) and z.covers(y):
        assert z.covers(j)
    assert x.concurrent(y) == (not x.covers(y) and not y.covers(x))


def test_one_holder_at_a_time_until_expiry() -> None:
    t = LeaseTable()
    a = t.acquire("f", "alice", now=0, ttl=10)
    assert a == Lease("f", "alice", 1, 10)
    denied = t.acquire("f", "bob", now=5, ttl=10)
    assert denied == LeaseDenied("f", "bob", "held_by_other", a)
    b = t.acquire("f", "bob", now=10, ttl=10)  # valid while now < expires_at
    assert b == Lease("f", "bob", 2, 20)
    assert t.current("f", 15) == b
    assert t.current("f", 20) is None


def test_reacquiring_extends_and_keeps_the_token() -> None:
    t = LeaseTable()
    t.acquire("f", "alice", now=0, ttl=10)
    assert t.acquire("f", "alice", now=8, ttl=10) == Lease("f", "alice", 1, 18)
    # After expiry a new grant gets a new token, even for the same holder.
    assert t.acquire("f", "alice", now=30, ttl=10) == Lease("f", "alice", 2, 40)


def test_renew_release_and_check() -> None:
    t = LeaseTable()
    t.acquire("f", "alice", now=0, ttl=10)
    assert t.renew("f", "alice", 1, now=9, ttl=10) == Lease("f", "alice", 1, 19)
    assert isinstance(t.renew("f", "bob", 1, now=9, ttl=10), LeaseDenied)
    late = t.renew("f", "alice", 1, now=19, ttl=10)
    assert isinstance(late, LeaseDenied)
    assert late.reason == "expired"
    assert t.check("f", "alice", 1, now=18) is None
    assert t.check("f", "alice", None, now=18) == "no_lease"
    assert t.check("f", "alice", 7, now=18) == "stale_token"
    assert t.check("f", "bob", 1, now=18) == "not_holder"
    assert t.check("g", "alice", 1, now=18) == "no_lease"
    assert not t.release("f", "alice", 7)
    assert t.release("f", "alice", 1)
    assert not t.release("f", "alice", 1)
    assert t.check("f", "alice", 1, now=1) == "no_lease"


def test_expire_drops_expired_leases_in_path_order() -> None:
    t = LeaseTable()
    t.acquire("b", "x", now=0, ttl=1)
    t.acquire("a", "y", now=0, ttl=1)
    t.acquire("c", "z", now=0, ttl=5)
    assert [lease.path for lease in t.expire(now=1)] == ["a", "b"]
    assert t.expire(now=1) == ()
    assert t.current("c", 1) is not None


def test_tokens_only_grow() -> None:
    t = LeaseTable()
    tokens = []
    for i in range(5):
        lease = t.acquire("f", f"w{i % 2}", now=i * 10, ttl=5)
        assert isinstance(lease, Lease)
        tokens.append(lease.token)
    assert tokens == sorted(set(tokens))


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl"):
        LeaseTable().acquire("f", "a", now=0, ttl=0)
