"""Which partition a key goes to: Kafka's default partitioner (murmur2), one copy of it.

Every task-scoped message is keyed by its task id, so a reader that wants one
task's records reads only the partition the producer put that key in. The
producer (aiokafka, like the Java client) hashes the key's bytes with murmur2,
clears the sign bit and takes the rest modulo the partition count; readers and
`Publisher.publish(partition_key=...)` must use the very same function, or a
task's reader looks in the wrong partition and sees nothing. That function is
`partition_for`; a unit test holds it equal to aiokafka's `DefaultPartitioner`
and an integration test holds it equal to where the broker stored a record.

It sits in wire (pure, no I/O) so the task core can use it as well: a hedge
copy's key is picked by the partition it lands on (`synod.core.task.lanes`).
`synod.transport.partitioner` re-exports it for the adapters.
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """32-bit MurmurHash2 as `org.apache.kafka.common.utils.Utils.murmur2` computes it."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of `partitions` (numbered 0..n-1) the default partitioner gives `key`."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
