"""Zones behind toxiproxy on the real broker: every TCP path of a zone's client
goes through its proxy, so a cut really partitions it and a heal brings it back."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from synod.dev.netfaults import NetFaults, NetFaultsError


async def _topic(bootstrap: str) -> str:
    name = f"netfaults-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def test_a_zone_client_is_told_the_proxy_port_for_every_connection(
    kafka: object, netfaults: NetFaults
) -> None:
    bootstrap = netfaults.bootstrap("z1")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        brokers = producer.client.cluster.brokers()
        # The leader's address comes from metadata: the zone's advertised port, the proxy.
        assert {b.port for b in brokers} == {netfaults.zones["z1"].port}
    finally:
        await producer.stop()


async def test_cut_partitions_the_zone_and_heal_restores_it(
    kafka: object, netfaults: NetFaults
) -> None:
    direct = kafka.bootstrap  # type: ignore[attr-defined]
    topic = await _topic(direct)
    producer = AIOKafkaProducer(
        bootstrap_servers=netfaults.bootstrap("z2"), request_timeout_ms=3000
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before")
        netfaults.cut("z2")
        assert netfaults.state()["z2"]["enabled"] is False
        with pytest.raises((KafkaError, asyncio.TimeoutError)):
            await asyncio.wait_for(producer.send_and_wait(topic, b"during"), 8)
        # Another zone is untouched by z2's cut.
        other = AIOKafkaProducer(bootstrap_servers=netfaults.bootstrap("z3"))
        await other.start()
        await other.send_and_wait(topic, b"other zone")
        await other.stop()
        netfaults.heal("z2")
        for _ in range(30):
            try:
                await asyncio.wait_for(producer.send_and_wait(topic, b"after"), 5)
                break
            except (KafkaError, TimeoutError):
                await asyncio.sleep(0.5)
        else:
            pytest.fail("the zone did not come back after heal")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=direct, auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen: list[bytes] = []
        deadline = time.monotonic() + 20
        while b"after" not in seen and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend(r.value for r in batch if r.value is not None)
        assert {b"before", b"other zone", b"after"} <= set(seen)
    finally:
        await consumer.stop()


async def test_slow_adds_at_least_the_latency_asked(kafka: object, netfaults: NetFaults) -> None:
    topic = await _topic(kafka.bootstrap)  # type: ignore[attr-defined]
    producer = AIOKafkaProducer(bootstrap_servers=netfaults.bootstrap("z4"))
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm")
        netfaults.slow("z4", latency_ms=400)
        assert netfaults.state()["z4"]["toxics"] == ["latency"]
        started = time.monotonic()
        await producer.send_and_wait(topic, b"slow")
        # A lower bound only: a request and its answer each wait 400 ms.
        assert time.monotonic() - started >= 0.4
        netfaults.heal("z4")
        assert netfaults.state()["z4"] == {"enabled": True, "toxics": []}
    finally:
        await producer.stop()


def test_unknown_zone_and_empty_slow_say_what_to_fix(netfaults: NetFaults) -> None:
    with pytest.raises(NetFaultsError, match="unknown zone 'nope'; the zones are z1"):
        netfaults.cut("nope")
    with pytest.raises(NetFaultsError, match="needs latency_ms"):
        netfaults.slow("z1")
