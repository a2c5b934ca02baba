"""On a 3-broker KRaft cluster (RF 3, min.insync.replicas 2): SIGKILL the broker that
leads a partition Synod writes, mid-run; no acknowledged record is lost, the consensus
service goes on deciding as the log says, and the killed broker rejoins the ISR.

Heavy (three JVMs, ~2 min on 2 cores): `make test-cluster`, not part of `make test`.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from synod.transport import Publisher
from synod.transport.admin import ensure_topics
from synod.transport.topics import CATALOGUE, VOTES, topic_name
from synod.wire import Codec, VoteRequested

sys.path.insert(0, str(Path(__file__).parents[1] / "consensus"))

from consensus_harness import (
    DecisionWatcher,
    Jurors,
    ServiceProcess,
    check_decided_once,
    collect,
    mixed_scripts,
    offline_decisions,
)

PARTITIONS = 3


async def _describe(bootstrap: str, topic: str) -> tuple[list[dict[str, Any]], str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = (await admin.describe_topics([topic]))[0]["partitions"]
        min_isr = ""
        async with asyncio.timeout(15):  # a new topic's config reaches every broker soon
            while not min_isr:
                configs = await admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, topic)]
                )
                entries = configs[0].to_object()["resources"][0]["config_entries"]
                found = [e for e in entries if e["config_names"] == "min.insync.replicas"]
                min_isr = found[0]["config_value"] if found else ""
                if not min_isr:
                    await asyncio.sleep(0.2)
        return sorted(partitions, key=lambda p: p["partition"]), min_isr
    finally:
        await admin.close()


async def test_killing_a_partition_leader_loses_no_acknowledged_record(
    kafka_cluster: Any, tmp_path: Path
) -> None:
    bootstrap = kafka_cluster.bootstrap
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, CATALOGUE, prefix=prefix, partitions=PARTITIONS)
    votes = topic_name(VOTES, prefix)
    partitions, min_isr = await _describe(bootstrap, votes)
    assert [len(p["replicas"]) for p in partitions] == [3] * PARTITIONS
    assert min_isr == "2"

    rng = random.Random(20261202)
    scripts = mixed_scripts("failover", 40, rng)
    service = ServiceProcess(bootstrap, prefix, "consensus-1", tmp_path)
    jurors = Jurors(bootstrap, prefix, scripts, rng)
    watcher = DecisionWatcher(bootstrap, prefix)
    await jurors.start()
    await watcher.start()
    service.start()
    acked: dict[str, tuple[int, int]] = {}  # opening message id -> (partition, offset)
    victim = -1
    started = time.monotonic()
    try:
        async with Publisher(bootstrap, client_id="planner-test") as planner:
            for i, script in enumerate(scripts):
                if i == 10:
                    # The leader of the partition the next opening goes to.
                    by_partition = {p["partition"]: p["leader"] for p in partitions}
                    victim = by_partition[(await _partition_of(planner, votes, script))]
                    kafka_cluster.kill(victim)
                    killed_at = time.monotonic()
                env = script.opening()
                meta = await planner.publish(votes, env)
                acked[env.message_id] = (meta.partition, meta.offset)
                await asyncio.sleep(0.1)
        first_ack_after_kill = time.monotonic() - killed_at
        await watcher.wait_for(
            {s.proposal_id for s in scripts}, timeout_s=90, check=lambda: _alive(service)
        )
        resumed_in = time.monotonic() - killed_at
        assert service.stop() == 0, service.tail()
    finally:
        await jurors.stop()
        await watcher.stop()
        if service.alive:
            service.stop()

    outcome, log = await collect(bootstrap, prefix)
    codec = Codec()
    in_log = {
        codec.decode(value).message_id
        for records in log.values()
        for _, value in records
        if isinstance(codec.decode(value).body, VoteRequested)
    }
    assert set(acked) <= in_log, f"acknowledged openings lost: {sorted(set(acked) - in_log)}"
    check_decided_once(scripts, outcome, offline_decisions(log))

    # The killed broker comes back on its data and catches up: in every ISR again.
    await asyncio.to_thread(kafka_cluster.restart, victim)
    async with asyncio.timeout(60):
        while True:
            partitions, _ = await _describe(bootstrap, votes)
            if all(victim in p["isr"] for p in partitions):
                break
            await asyncio.sleep(0.5)
    print(
        f"\n[broker-failover] killed node {victim}; first ack after the kill in "
        f"{first_ack_after_kill:.1f}s, all {len(scripts)} decided {resumed_in:.1f}s after it; "
        f"run {time.monotonic() - started:.1f}s"
    )


async def _partition_of(publisher: Publisher, topic: str, script: Any) -> int:
    from aiokafka.partitioner import DefaultPartitioner

    every = sorted(await publisher._producer.partitions_for(topic))
    return int(DefaultPartitioner()(script.opening().key, every, every))


def _alive(service: ServiceProcess) -> None:
    if service.proc is not None and not service.alive:
        raise AssertionError(f"{service.instance} exited:\n{service.tail()}")
