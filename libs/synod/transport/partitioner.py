"""Kafka's default partitioner: kept here for the adapters that import it from transport.

The function itself lives in `synod.wire.partitioner` (pure, no I/O), where the
task core may import it too: it picks a hedge copy's key by where it lands.
"""

from synod.wire.partitioner import murmur2, partition_for

__all__ = ["murmur2", "partition_for"]
