"""The one partitioner equals Kafka's: the Java client's murmur2 vectors and aiokafka's producer."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from synod.transport.partitioner import murmur2, partition_for

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed 32-bit results).
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("text", "signed"), sorted(JAVA_MURMUR2.items()))
def test_murmur2_gives_the_java_clients_values(text: str, signed: int) -> None:
    assert murmur2(text.encode()) == signed & 0xFFFFFFFF


@given(key=st.binary(max_size=64), partitions=st.integers(min_value=1, max_value=512))
def test_partition_for_is_the_partition_aiokafkas_default_partitioner_picks(
    key: bytes, partitions: int
) -> None:
    every = list(range(partitions))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, every, every)


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for(b"k", 0)
