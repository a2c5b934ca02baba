"""The secured local broker for real: SCRAM users per role, deny-by-default ACLs from the
rights table, a TLS listener with a CA made here (synod.dev.securekafka)."""

from __future__ import annotations

import asyncio
import json
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from synod.cli.main import _last_heartbeats
from synod.dev import localkafka, securekafka
from synod.dev.localkafka import BrokerInfo
from synod.dev.securekafka import Authority, Prepared
from synod.errors import BrokerError
from synod.transport import Publisher
from synod.transport.admin import ensure_topics
from synod.transport.authorship import Keyring
from synod.transport.logread import read_log
from synod.transport.security import KafkaSecurity, reload_from_environment
from synod.transport.topics import CATALOGUE, topic_name
from synod.wire import Envelope, Sender, StepCompleted

PREFIX = "sec."


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BrokerInfo, Prepared, dict[str, Any]]]:
    run_dir: Path = tmp_path_factory.mktemp("secure-broker")
    prepared = securekafka.prepare(run_dir, ["researcher-0", "consensus-0"])
    info = localkafka.start(run_dir, secure=prepared.secured)
    try:
        assert info.tls_bootstrap is not None
        asyncio.run(ensure_topics(info.bootstrap, prefix=PREFIX))
        asyncio.run(securekafka.grant(info.bootstrap, prepared.users, PREFIX))
        path = securekafka.write_credentials(run_dir, prepared, info.tls_bootstrap)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        yield info, prepared, json.loads(path.read_text())
    finally:
        localkafka.stop(run_dir)


def security_of(credentials: dict[str, Any], role: str, cafile: str | None = None) -> KafkaSecurity:
    env = securekafka.env_for(credentials, role)
    return KafkaSecurity(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=env["SYNOD_KAFKA_SASL_USERNAME"],
        sasl_password=env["SYNOD_KAFKA_SASL_PASSWORD"],
        ssl_cafile=cafile or env["SYNOD_KAFKA_SSL_CAFILE"],
    )


async def send(
    credentials: dict[str, Any], role: str, topic: str, cafile: str | None = None
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=credentials["bootstrap"],
        request_timeout_ms=10_000,
        **security_of(credentials, role, cafile).client_kwargs(),
    )
    await producer.start()
    try:
        async with asyncio.timeout(30):
            await producer.send_and_wait(topic_name(topic, PREFIX), b"{}", key=b"t1")
    finally:
        await producer.stop()


@pytest.fixture(autouse=True)
def _forget_settings() -> Iterator[None]:
    yield
    reload_from_environment()


async def test_a_researchers_credentials_cannot_write_the_deciding_topics(
    secured: tuple[BrokerInfo, Prepared, dict[str, Any]],
) -> None:
    _, _, credentials = secured
    for topic in ("synod.decisions", "synod.votes", "synod.results", "synod.tasks"):
        with pytest.raises(TopicAuthorizationFailedError):
            await send(credentials, "researcher", topic)
    # What the researcher does need, it may: its step results on the task's log.
    await send(credentials, "researcher", "synod.task-events")
    # And the consensus may write the votes topic (its ballot deadlines and decisions).
    await send(credentials, "consensus", "synod.votes")


async def test_every_acl_of_the_table_is_on_the_broker(
    secured: tuple[BrokerInfo, Prepared, dict[str, Any]],
) -> None:
    info, prepared, _ = secured
    # Granting again changes nothing (ACLs are a set); the count is the table's.
    expected = sum(
        len(securekafka.acl_bindings(role, user.username)) for role, user in prepared.users.items()
    )
    assert await securekafka.grant(info.bootstrap, prepared.users, PREFIX) == expected
    assert len(CATALOGUE) > 0


async def test_the_right_ca_connects_and_another_ca_fails_clearly(
    secured: tuple[BrokerInfo, Prepared, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, _, credentials = secured
    env = securekafka.env_for(credentials, "researcher", "researcher-0")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reload_from_environment()
    sent = Envelope.new(
        StepCompleted(step_id="s", output="o"),
        sender=Sender(role="researcher", instance="researcher-0"),
        task_id=f"tls-{uuid.uuid4().hex[:6]}",
    )
    async with Publisher(credentials["bootstrap"]) as publisher:
        await publisher.publish(topic_name("synod.task-events", PREFIX), sent)

    stranger = Authority.create("some other CA").write_cert(tmp_path / "other-ca.pem")
    monkeypatch.setenv("SYNOD_KAFKA_SSL_CAFILE", str(stranger))
    reload_from_environment()
    with pytest.raises(BrokerError) as caught:
        async with asyncio.timeout(60):
            await ensure_topics(credentials["bootstrap"], prefix="never.")
    message = str(caught.value)
    print(message)
    assert "SYNOD_KAFKA_SSL_CAFILE" in message
    assert "certificate is not trusted" in message
    with pytest.raises((KafkaError, OSError, TimeoutError)):
        await send(credentials, "researcher", "synod.task-events", cafile=str(stranger))


async def test_the_planners_transactional_outbox_is_allowed_and_a_workers_is_not(
    secured: tuple[BrokerInfo, Prepared, dict[str, Any]],
) -> None:
    _, _, credentials = secured

    async def transact(role: str, transactional_id: str) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=credentials["bootstrap"],
            transactional_id=transactional_id,
            enable_idempotence=True,
            request_timeout_ms=10_000,
            **security_of(credentials, role).client_kwargs(),
        )
        try:
            async with asyncio.timeout(30):
                await producer.start()
                async with producer.transaction():
                    await producer.send_and_wait(
                        topic_name("synod.task-events", PREFIX), b"{}", key=b"t1"
                    )
        finally:
            await producer.stop()

    # The id the planner uses in SYNOD_PLANNER_OUTBOX=transaction mode.
    await transact("planner", f"{PREFIX}synod.planner.planner-0")
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await transact("researcher", f"{PREFIX}synod.planner.planner-1")


async def test_the_cli_user_reads_everything_and_writes_only_tasks(
    secured: tuple[BrokerInfo, Prepared, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, prepared, credentials = secured
    await send(credentials, "cli", "synod.tasks")
    for topic in ("synod.task-events", "synod.votes", "synod.heartbeats"):
        with pytest.raises(TopicAuthorizationFailedError):
            await send(credentials, "cli", topic)
    # What `synod up --secure` writes for the CLI, loaded as `set -a; . cli.env` would.
    path = securekafka.write_cli_env(tmp_path, credentials, PREFIX)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    for line in path.read_text().splitlines():
        name, value = line.split("=", 1)
        monkeypatch.setenv(name, shlex.split(value)[0])
    reload_from_environment()
    await send(credentials, "researcher", "synod.task-events")  # a record to read back
    read = await read_log(
        credentials["bootstrap"], PREFIX, keyring=Keyring.load(prepared.keyring_file)
    )
    # `synod check`'s reader got to the records ("{}" is no envelope: undecodable).
    assert sum(read.undecodable.values()) >= 1
    beats = await _last_heartbeats(credentials["bootstrap"], PREFIX)  # `synod ps`'s reader
    assert beats == {}
