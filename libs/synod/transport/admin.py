"""Create the catalogue's topics idempotently (`synod topics create`), and ACLs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import CreateAclsRequest

from synod.errors import BrokerError, ConfigError
from synod.transport.security import KafkaSecurity, client_security, security_hint
from synod.transport.topics import CATALOGUE, TopicSpec, topic_name

# Kafka error codes in a CreateTopics response.
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicReport:
    topic: str
    action: Literal["created", "exists"]
    partitions: int
    note: str = ""


async def ensure_topics(
    bootstrap: str,
    specs: tuple[TopicSpec, ...] = CATALOGUE,
    prefix: str = "",
    partitions: int | None = None,
    replication_factor: int | None = None,
) -> list[TopicReport]:
    """Create the topics that are missing; report on each. Safe to run any number of times.

    `partitions` overrides the catalogue's partition count of every topic
    (small local installs); existing topics are never changed. The replication
    factor defaults to `default_replication(brokers)`: 3 on a cluster of three
    or more (with min.insync.replicas=2, so an acks=all write survives one
    broker's death and one broker may be down without stopping writes), else 1.
    """
    admin = AIOKafkaAdminClient(
        **client_security(), bootstrap_servers=bootstrap, request_timeout_ms=15_000
    )
    try:
        await admin.start()
    except Exception as exc:
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap}: {exc}{security_hint(bootstrap)}"
        ) from exc
    try:
        if replication_factor is None:
            cluster = await admin.describe_cluster()
            replication_factor = default_replication(len(cluster["brokers"]))
        existing = set(await admin.list_topics())
        wanted = {topic_name(s, prefix): s for s in specs}
        missing = [name for name in wanted if name not in existing]
        reports: dict[str, TopicReport] = {}
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name,
                        num_partitions=partitions or wanted[name].partitions,
                        replication_factor=replication_factor,
                        topic_configs=wanted[name].config(replication_factor),
                    )
                    for name in missing
                ]
            )
            for name, code, *rest in response.topic_errors:
                if code == _TOPIC_ALREADY_EXISTS:
                    existing.add(name)  # created concurrently by someone else: fine
                elif code != 0:
                    message = rest[0] if rest else ""
                    raise BrokerError(f"creating {name} failed: error {code} {message}")
                else:
                    reports[name] = TopicReport(
                        name, "created", partitions or wanted[name].partitions
                    )
        described = await _partition_counts(admin, [n for n in wanted if n not in reports])
        for name, count in described.items():
            spec_count = partitions or wanted[name].partitions
            note = "" if count == spec_count else f"has {count} partitions; catalogue: {spec_count}"
            reports[name] = TopicReport(name, "exists", count, note)
        return [reports[name] for name in wanted]
    finally:
        await admin.close()


def default_replication(brokers: int) -> int:
    """Replicas per partition on a cluster of `brokers`: 3 when it can, else all of them."""
    return max(1, min(3, brokers))


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    described: list[dict[str, Any]] = await admin.describe_topics(names)
    return {d["topic"]: len(d["partitions"]) for d in described}


async def partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Partitions of each topic; a clear error when the broker or a topic is missing.

    Readers that assign partitions themselves (the CLI, the planner's workspace
    reads, `synod team run`) need the count to find a key's partition.
    """
    admin = AIOKafkaAdminClient(
        **client_security(), bootstrap_servers=bootstrap, client_id="synod-admin"
    )
    try:
        await admin.start()
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        described: list[dict[str, Any]] = await admin.describe_topics(topics)
    finally:
        await admin.close()
    counts = {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}
    missing = [t for t in topics if not counts.get(t)]
    if missing:
        raise ConfigError(
            f"topic {missing[0]} does not exist on {bootstrap}; create the topics with "
            "`synod topics create` (and check SYNOD_TOPIC_PREFIX)"
        )
    return counts


# (resource type, resource name, pattern type, principal, operation): Kafka's codes.
AclBinding = tuple[int, str, int, str, int]
_ALLOW = 3  # AclPermissionType.ALLOW


async def create_acls(operator_bootstrap: str, bindings: list[AclBinding]) -> int:
    """Allow every binding, for any host, through the operator's listener (the
    plaintext loopback one the broker trusts as its super user, whatever the
    environment's SYNOD_KAFKA_* say); returns how many. aiokafka has no ACL API:
    this sends its CreateAcls request."""
    admin = AIOKafkaAdminClient(
        **client_security(KafkaSecurity()),
        bootstrap_servers=operator_bootstrap,
        client_id="synod-acls",
    )
    await admin.start()
    try:
        requests = [
            CreateAclsRequest(rtype, name, pattern, principal, "*", op, _ALLOW)
            for rtype, name, pattern, principal, op in bindings
        ]
        responses = await asyncio.gather(*(admin._send_request(r) for r in requests))
    finally:
        await admin.close()
    for response in responses:
        for code, message in response.creation_responses:
            if code != 0:
                raise BrokerError(f"creating an ACL failed: error {code} {message}")
    return len(requests)
