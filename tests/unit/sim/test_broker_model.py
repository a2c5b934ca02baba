"""The broker model keeps what Synod relies on from Kafka: placement, order, groups, fencing."""

from __future__ import annotations

from synod.sim.kafka import Broker
from synod.transport.partitioner import partition_for


def test_records_land_where_the_real_partitioner_puts_their_key() -> None:
    broker = Broker({"t": 12})
    for key in (b"task-1", b"task-2", b"another"):
        record = broker.append("t", key, b"v", 0.0, 0.0, key)
        assert record.partition == partition_for(key, 12)


def test_a_partition_never_reorders_but_partitions_overtake_each_other() -> None:
    broker = Broker({"t": 2})
    keys = [k for k in (b"a", b"b", b"c", b"d", b"e") if partition_for(k, 2) == 0][:2]
    other = next(k for k in (b"a", b"b", b"c", b"d", b"e", b"f") if partition_for(k, 2) == 1)
    slow = broker.append("t", keys[0], b"1", 0.0, 5.0, keys[0])
    fast = broker.append("t", keys[1], b"2", 0.0, 0.1, keys[1])
    elsewhere = broker.append("t", other, b"3", 0.0, 0.1, other)
    assert fast.visible_at >= slow.visible_at  # behind its partition's earlier record
    assert elsewhere.visible_at < slow.visible_at  # another partition overtakes
    assert broker.read(("t", 0), 0, 1.0) is None
    assert broker.read(("t", 1), 0, 1.0) == elsewhere


def test_range_assignment_moves_partitions_on_join_and_leave() -> None:
    broker = Broker({"a": 4, "b": 4})
    group = broker.group("g", ("a", "b"))
    broker.join(group, "m1")
    assert sorted(group.assignment["m1"]) == [(t, p) for t in "ab" for p in range(4)]
    broker.join(group, "m2")
    # Co-partitioned: partition p of both topics goes to one member.
    assert group.assignment["m1"] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert group.assignment["m2"] == [("a", 2), ("a", 3), ("b", 2), ("b", 3)]
    changes = broker.leave(group, "m1")
    assert {c.member for c in changes} == {"m1", "m2"}
    assert len(group.assignment["m2"]) == 8


def test_a_commit_from_an_old_generation_or_a_non_owner_is_refused() -> None:
    broker = Broker({"a": 2})
    group = broker.group("g", ("a",))
    broker.join(group, "m1")
    gen = group.generation
    assert broker.commit(group, "m1", gen, ("a", 0), 3, "meta")
    broker.join(group, "m2")
    assert not broker.commit(group, "m1", gen, ("a", 0), 5, "")  # fenced: a zombie
    assert broker.committed(group, ("a", 0)).offset == 3
    assert not broker.commit(group, "m1", group.generation, ("a", 1), 1, "")  # m2 owns it
