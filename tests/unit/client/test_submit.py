"""`AsyncClient.submit` from many coroutines at once shares one producer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from synod.client import AsyncClient, Cluster
from synod.client import api as client_api


class _CountingPublisher:
    """Stands in for the Kafka producer: counts starts, yields while starting (as a
    real start waits for the broker), records what was published."""

    started = 0
    stopped = 0

    def __init__(self, bootstrap: str, **_: Any) -> None:
        self.sent: list[Any] = []

    async def start(self) -> None:
        type(self).started += 1
        await asyncio.sleep(0.01)

    async def stop(self) -> None:
        type(self).stopped += 1

    async def publish(self, topic: str, envelope: Any) -> Any:
        self.sent.append(envelope)
        return type("Meta", (), {"partition": 0, "offset": len(self.sent) - 1})()


async def test_concurrent_first_submits_start_one_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_api, "Publisher", _CountingPublisher)
    cluster = Cluster(bootstrap="127.0.0.1:1", prefix="t.", source="argument")
    async with AsyncClient(cluster=cluster) as client:
        done = await asyncio.gather(
            *(client.submit(f"goal {i}", task_id=f"t{i}") for i in range(8))
        )
    assert sorted(s.task_id for s in done) == [f"t{i}" for i in range(8)]
    assert _CountingPublisher.started == 1  # without the lock: 8, and 7 never stopped
    assert _CountingPublisher.stopped == 1
