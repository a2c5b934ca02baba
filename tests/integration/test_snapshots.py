"""The snapshot store on the real broker: the latest snapshot of a key wins, keys do
not mix, and a missing or damaged one is None (logged and counted), never trusted."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from synod.core.snapshot import snapshot_key
from synod.transport.admin import ensure_topics
from synod.transport.snapshots import SnapshotStore
from synod.transport.topics import SNAPSHOTS, topic_name


def _restores(owner: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "synod_snapshot_restores_total", {"owner": owner, "outcome": outcome}
    )
    return value or 0.0


async def test_the_latest_snapshot_of_each_partition_comes_back(bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, (SNAPSHOTS,), prefix=prefix, partitions=2)
    topic = topic_name(SNAPSHOTS, prefix)
    owner = f"owner-{uuid.uuid4().hex[:6]}"
    store = SnapshotStore(bootstrap, topic, owner)
    other = SnapshotStore(bootstrap, topic, f"{owner}-other")
    await store.start()
    await other.start()
    try:
        assert await store.load("src", 0) is None
        assert _restores(owner, "missing") == 1
        for offset in (10, 20, 30):
            await store.save("src", 0, offset, f"state@{offset}".encode())
        await store.save("src", 2, 7, b"partition 2 shares snapshot partition 0")
        # Many records of another owner after ours: the reader widens its window.
        for offset in range(40):
            await other.save("src", 0, offset, b"x" * 100)
        latest = await store.load("src", 0)
        assert latest is not None
        assert (latest.offset, latest.payload) == (30, b"state@30")
        two = await store.load("src", 2)
        assert two is not None
        assert two.offset == 7
        assert store.check(latest, log_start=0, log_end=30) is not None
        assert store.check(latest, log_start=0, log_end=29) is None  # past the end: stale
        assert _restores(owner, "stale") == 1
        point = store.check(latest, log_start=50, log_end=60)
        assert point is not None
        assert point.offset == 50  # retention deleted up to 50: fold from the log start
    finally:
        await store.stop()
        await other.stop()


async def test_a_damaged_snapshot_is_refused_logged_and_counted(
    bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, (SNAPSHOTS,), prefix=prefix, partitions=1)
    topic = topic_name(SNAPSHOTS, prefix)
    owner = f"owner-{uuid.uuid4().hex[:6]}"
    store = SnapshotStore(bootstrap, topic, owner)
    await store.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await store.save("src", 0, 5, b"good")
        # A newer record under the same key that is not a snapshot at all.
        await producer.send_and_wait(topic, b"SYNS\x01garbage", key=snapshot_key(owner, "src", 0))
        with caplog.at_level(logging.WARNING, logger="synod.transport.snapshots"):
            assert await store.load("src", 0) is None
        assert _restores(owner, "corrupt") == 1
        assert any("replaying the partition" in r.getMessage() for r in caplog.records)
    finally:
        await producer.stop()
        await store.stop()


async def test_an_assignment_loads_every_partition_with_one_reader(bootstrap: str) -> None:
    """`load_many` (what a planner or consensus service of 64 partitions calls) returns
    what `load` would for each partition: the latest of each, None where there is none,
    whether partitions share a snapshot partition or need a wider window back."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, (SNAPSHOTS,), prefix=prefix, partitions=3)
    topic = topic_name(SNAPSHOTS, prefix)
    owner = f"owner-{uuid.uuid4().hex[:6]}"
    store = SnapshotStore(bootstrap, topic, owner)
    other = SnapshotStore(bootstrap, topic, f"{owner}-other")
    await store.start()
    await other.start()
    try:
        for source in (0, 1, 3, 4, 7):  # 0 and 3 share snapshot partition 0; 1, 4, 7 share 1
            for offset in (1, 2):
                await store.save(
                    "src", source, offset * 100 + source, f"{source}@{offset}".encode()
                )
        for offset in range(70):  # buries partition 1's: the reader must widen past 16, 64
            await other.save("src", 1, offset, b"y" * 50)
        loaded = await store.load_many("src", [0, 1, 2, 3, 4, 5, 7])
        got = {p: (s.offset, s.payload) if s is not None else None for p, s in loaded.items()}
        assert got == {
            0: (200, b"0@2"),
            1: (201, b"1@2"),
            2: None,  # never written
            3: (203, b"3@2"),
            4: (204, b"4@2"),
            5: None,
            7: (207, b"7@2"),
        }
        for p in (0, 1, 4):
            one = await store.load("src", p)
            assert one is not None
            assert (one.offset, one.payload) == got[p]
    finally:
        await store.stop()
        await other.stop()
