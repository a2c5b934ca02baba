"""SASL/SCRAM for real: a broker whose second listener requires SCRAM, and Synod's
own clients (topic creation, the publisher, a consumer) configured only through
the SYNOD_KAFKA_* environment, as the chart configures them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from synod.dev import localkafka
from synod.dev.localkafka import BrokerInfo, ScramUser
from synod.errors import BrokerError
from synod.transport import Publisher
from synod.transport.admin import ensure_topics
from synod.transport.security import client_security, reload_from_environment
from synod.transport.topics import TASKS, topic_name
from synod.wire import Codec, Envelope, Sender, TaskSubmitted

USER = ScramUser("synod-test", "correct horse battery staple")


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerInfo]:
    run_dir: Path = tmp_path_factory.mktemp("scram-broker")
    info = localkafka.start(run_dir, scram=USER)
    try:
        yield info
    finally:
        localkafka.stop(run_dir)


def _use(monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    monkeypatch.setenv("SYNOD_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SYNOD_KAFKA_SASL_MECHANISM", USER.mechanism)
    monkeypatch.setenv("SYNOD_KAFKA_SASL_USERNAME", USER.username)
    monkeypatch.setenv("SYNOD_KAFKA_SASL_PASSWORD", password)
    reload_from_environment()


@pytest.fixture(autouse=True)
def _forget_settings() -> Iterator[None]:
    yield
    reload_from_environment()


async def test_synod_clients_authenticate_with_scram_from_the_environment(
    scram_broker: BrokerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, USER.password)
    bootstrap = scram_broker.sasl_bootstrap
    assert bootstrap is not None
    prefix = f"sasl{uuid.uuid4().hex[:6]}."
    reports = await ensure_topics(bootstrap, prefix=prefix)
    assert {r.action for r in reports} == {"created"}

    sent = Envelope.new(
        TaskSubmitted(goal="over SCRAM"), sender=Sender(role="client", instance="t"), task_id="s1"
    )
    async with Publisher(bootstrap) as publisher:
        await publisher.publish(topic_name(TASKS, prefix), sent)
    consumer = AIOKafkaConsumer(
        topic_name(TASKS, prefix),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"g{uuid.uuid4().hex}",
        **client_security(),
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    assert Codec().decode(record.value).message_id == sent.message_id


async def test_a_wrong_password_is_refused(
    scram_broker: BrokerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, "not the password")
    assert scram_broker.sasl_bootstrap is not None
    with pytest.raises(BrokerError, match="SCRAM-SHA-512 as 'synod-test': check SYNOD_KAFKA_SASL"):
        await ensure_topics(scram_broker.sasl_bootstrap, prefix="never.")


async def test_the_sasl_listener_refuses_a_client_without_credentials(
    scram_broker: BrokerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNOD_KAFKA_SECURITY_PROTOCOL", raising=False)
    reload_from_environment()
    assert scram_broker.sasl_bootstrap is not None
    with pytest.raises((BrokerError, KafkaError, TimeoutError)):
        async with asyncio.timeout(20):
            await ensure_topics(scram_broker.sasl_bootstrap, prefix="never.")
