"""Integration tests run against the real broker from the session `kafka` fixture."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


@pytest.fixture(scope="session")
def bootstrap(kafka: Any) -> str:
    return str(kafka.bootstrap)


@pytest.fixture
async def admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def new_topic(
    admin: AIOKafkaAdminClient,
) -> Callable[..., Coroutine[Any, Any, str]]:
    """Create a fresh, uniquely named topic (auto-creation is off, as in production)."""

    async def create(partitions: int = 3, **config: str) -> str:
        name = f"test.{uuid.uuid4().hex[:12]}"
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=config)]
        )
        return name

    return create
