"""Where Kafka clients are built: the one place that applies the process's security.

Everything above the transport reads and writes through `Publisher`,
`KeyOrderedConsumer` or `PartitionReader`; the few adapters that need a bare
aiokafka client (the consensus service's transactional fold, the gateway's
subscription without a group) get it from here, so no client is ever built
without `client_security()` and no module outside `synod.transport` names the
aiokafka constructors.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from synod.transport.security import client_security


def kafka_consumer(bootstrap: str, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer with this process's security settings; `options` as aiokafka's."""
    return AIOKafkaConsumer(*topics, **client_security(), bootstrap_servers=bootstrap, **options)


def kafka_producer(bootstrap: str, **options: Any) -> AIOKafkaProducer:
    """An aiokafka producer with this process's security settings; `options` as aiokafka's."""
    return AIOKafkaProducer(**client_security(), bootstrap_servers=bootstrap, **options)


__all__ = ["AIOKafkaConsumer", "AIOKafkaProducer", "kafka_consumer", "kafka_producer"]
