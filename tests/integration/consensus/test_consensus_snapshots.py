"""The consensus service restored from a snapshot decides as one that replayed the
whole vote log; a damaged snapshot means a full replay (logged), with the same result."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from aiokafka import AIOKafkaProducer
from consensus_harness import (
    DecisionWatcher,
    Jurors,
    ServiceProcess,
    check_decided_once,
    collect,
    mixed_scripts,
    offline_decisions,
    open_proposals,
)

from conftest import PARTITIONS
from synod.core.snapshot import snapshot_key
from synod.transport import Publisher
from synod.transport.snapshots import latest_value
from synod.transport.topics import SNAPSHOTS, VOTES, topic_name

SNAPSHOT_OFTEN = {
    "SYNOD_CONSENSUS_SNAPSHOT_INTERVAL_S": "0.3",
    "SYNOD_CONSENSUS_SNAPSHOT_MIN_RECORDS": "1",
}


async def _snapshots(bootstrap: str, prefix: str) -> dict[int, bytes]:
    found = {}
    for partition in range(PARTITIONS):
        key = snapshot_key(f"{prefix}synod.consensus", topic_name(VOTES, prefix), partition)
        value = await latest_value(bootstrap, topic_name(SNAPSHOTS, prefix), key, partition)
        if value is not None:
            found[partition] = value
    return found


def _alive(service: ServiceProcess) -> None:
    if service.proc is not None and not service.alive:
        raise AssertionError(f"{service.instance} exited:\n{service.tail()}")


def _assigned(service: ServiceProcess) -> list[dict[str, object]]:
    # The vote fold's own assignments: the service also runs a heartbeat consumer
    # (reachability, issue 16) whose transport logs a "partitions assigned" of its own.
    return [
        e
        for e in service.log_events()
        if e.get("event") == "partitions assigned"
        and str(e.get("logger", "")).startswith("synod.roles.consensus")
    ]


async def test_a_restart_restores_snapshots_and_decides_as_the_whole_log_says(
    bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    rng = random.Random(20261203)
    scripts = mixed_scripts("snap", 60, rng)
    service = ServiceProcess(bootstrap, prefix, "consensus-1", tmp_path, **SNAPSHOT_OFTEN)
    jurors = Jurors(bootstrap, prefix, scripts, rng)
    watcher = DecisionWatcher(bootstrap, prefix)
    await jurors.start()
    await watcher.start()
    service.start()
    try:
        async with Publisher(bootstrap, client_id="planner-test") as planner:
            await open_proposals(planner, prefix, scripts[:30], rate_per_s=15)
            # Snapshots of every partition are out: kill, restart on them.
            async with asyncio.timeout(30):
                while len(await _snapshots(bootstrap, prefix)) < PARTITIONS:
                    _alive(service)
                    await asyncio.sleep(0.3)
            service.kill()
            first_run = len(_assigned(service))
            service.start()
            await open_proposals(planner, prefix, scripts[30:], rate_per_s=15)
        await watcher.wait_for(
            {s.proposal_id for s in scripts}, timeout_s=90, check=lambda: _alive(service)
        )
        assert service.stop() == 0, service.tail()

        # Now damage every snapshot: the next start replays everything, and says so.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for partition in range(PARTITIONS):
                key = snapshot_key(f"{prefix}synod.consensus", topic_name(VOTES, prefix), partition)
                await producer.send_and_wait(
                    topic_name(SNAPSHOTS, prefix),
                    b"SYNS\x01\x00\x00\x00\x02{}",
                    key=key,
                    partition=partition % PARTITIONS,
                )
        finally:
            await producer.stop()
        second_run = len(_assigned(service))
        service.start()
        async with asyncio.timeout(30):
            # Every partition assigned (with one instance: in one assignment).
            while len(_assigned(service)) == second_run:
                _alive(service)
                await asyncio.sleep(0.2)
        assert service.stop() == 0, service.tail()
    finally:
        await jurors.stop()
        await watcher.stop()
        if service.alive:
            service.stop()

    outcome, log = await collect(bootstrap, prefix)
    check_decided_once(scripts, outcome, offline_decisions(log))
    assigned = _assigned(service)
    assert all(e["restored"] == {} for e in assigned[:first_run])  # a new install: none yet
    restored = {int(p) for e in assigned[first_run:second_run] for p in e["restored"]}  # type: ignore[attr-defined]
    assert restored == set(range(PARTITIONS))
    assert all(e["restored"] == {} for e in assigned[second_run:])
    unusable = [e for e in service.log_events() if "snapshot unusable" in str(e.get("event"))]
    assert {e["reason"] for e in unusable} == {"corrupt"}
    assert len(unusable) == PARTITIONS
