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
