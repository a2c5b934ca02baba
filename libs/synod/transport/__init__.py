"""Kafka adapter (publish, key-ordered consume, topics, dead letters); imports core and below.

`KeyOrderedConsumer` and `Publisher` talk to a real broker; `MemoryBroker`,
`MemoryPublisher` and `MemoryConsumer` offer the same interface in memory for
unit tests and simulation.
"""

from synod.transport.consumer import ConsumerConfig, KeyOrderedConsumer, serve
from synod.transport.deadletter import DeadLetterPublisher
from synod.transport.dispatcher import DeadLetterSink, Handler, RawRecord, Received
from synod.transport.memory import MemoryBroker, MemoryConsumer, MemoryPublisher
from synod.transport.producer import Publisher

__all__ = [
    "ConsumerConfig",
    "DeadLetterPublisher",
    "DeadLetterSink",
    "Handler",
    "KeyOrderedConsumer",
    "MemoryBroker",
    "MemoryConsumer",
    "MemoryPublisher",
    "Publisher",
    "RawRecord",
    "Received",
    "serve",
]
