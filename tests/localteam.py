"""Helpers for tests that run the whole team as processes (tests/e2e, tests/chaos).

`pythonpath = ["."]` in the pytest settings makes this importable as
`tests.localteam` from any test directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from synod.dev.localkafka import free_port
from synod.dev.localrun import LocalRun
from synod.dev.netfaults import NetFaults
from synod.transport.topics import TASKS, TopicSpec, topic_name
from synod.wire import Codec, TaskCompleted, TaskFailed

CODEC = Codec()


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set these variables for the children a LocalRun starts; restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.asynccontextmanager
async def local_team(
    bootstrap: str,
    run_dir: Path,
    name: str,
    replicas: Mapping[str, int],
    env: Mapping[str, str] | None = None,
    *,
    zones: Mapping[str, str] | None = None,
    net: NetFaults | None = None,
    **run_options: Any,
) -> AsyncIterator[LocalRun]:
    """The services as processes on the test session's broker, ready, stopped after.

    Topics get a fresh prefix per run (`<name><6 hex>.`) so tests sharing the
    broker never read each other's records; `env` (SYNOD_*) is set for the
    children on top of the sim backend and restored afterwards. `zones` maps an
    instance ("reviewer-1") to a zone of `net`: that instance reaches the broker
    only through the zone's proxy, so `net.cut(zone)` partitions it.
    """
    if zones and net is None:
        raise ValueError("zones need the NetFaults of the broker (the `netfaults` fixture)")
    bootstraps = {i: net.bootstrap(z) for i, z in (zones or {}).items()} if net else {}
    with environment({"SYNOD_LLM_BACKEND": "sim", **(env or {})}):
        run = LocalRun(
            bootstrap=bootstrap,
            prefix=f"{name}{uuid.uuid4().hex[:6]}.",
            run_dir=run_dir,
            gateway_port=free_port(),
            replicas=dict(replicas),
            bootstraps=bootstraps,
            **run_options,
        )
        try:
            await run.start()
            await run.wait_ready()
            yield run
        finally:
            run.stop()


@contextlib.asynccontextmanager
async def respawning(run: LocalRun) -> AsyncIterator[None]:
    """What `synod up` does beside the team: respawn children that exit and answer the
    supervisor's restart requests (it restarts an instance it cannot hear, e.g. a
    partitioned one), until the block ends."""
    stop = asyncio.Event()
    watcher = asyncio.create_task(run.watch(stop))
    try:
        yield
    finally:
        stop.set()
        await watcher


async def read_topic(
    run: LocalRun,
    spec: TopicSpec,
    done: Callable[[list[Any]], bool],
    timeout_s: float = 120,
    *,
    drain_s: float = 0.0,
) -> list[Any]:
    """A topic's records from the start until `done(records)`, or fail after the bound;
    then whatever else arrives within `drain_s` (for topics with no natural end)."""
    consumer = AIOKafkaConsumer(
        topic_name(spec, run.prefix),
        bootstrap_servers=run.bootstrap,
        auto_offset_reset="earliest",
        group_id=f"check-{uuid.uuid4().hex}",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while not done(records):
            assert time.monotonic() < deadline, f"timed out with {len(records)} records"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        if drain_s:
            for batch in (await consumer.getmany(timeout_ms=int(drain_s * 1000))).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def outcomes_by_task(records: list[Any]) -> dict[str, set[tuple[str, str]]]:
    """task id -> distinct (message id, type) of its outcomes."""
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r in records:
        env = CODEC.decode(r.value)
        if isinstance(env.body, TaskCompleted | TaskFailed):
            out[env.task_id or ""].add((env.message_id, env.type))
    return out


async def send_raw(run: LocalRun, items: list[tuple[str, bytes]]) -> None:
    """Publish raw values to synod.tasks as any Kafka client would, keyed by task."""
    producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap)
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(topic_name(TASKS, run.prefix), value, key=key.encode())
    finally:
        await producer.stop()


async def send_goals(run: LocalRun, goals: Mapping[str, str], **fields: Any) -> None:
    """Submit tasks in the short JSON form: {task_id, goal, ...fields}."""
    await send_raw(
        run,
        [(t, json.dumps({"task_id": t, "goal": g, **fields}).encode()) for t, g in goals.items()],
    )


async def assert_log_checks(run: LocalRun, *, task_id: str | None = None) -> dict[str, Any]:
    """End of every e2e and chaos test: `synod check` over the run's whole log must pass.

    Runs the same code as the command (read every topic, check every invariant)
    and fails with the report's text, which names each violating record.
    """
    from synod.cli.check import run_check

    keyring = run.credentials["keyring_file"] if run.credentials else None
    doc = await run_check(run.bootstrap, run.prefix, task_id, keyring_file=keyring)
    print(
        f"synod check: {doc['records']} records, {doc['tasks']} tasks, "
        f"{doc['checked']['cause_links']} cause links; read {doc['read_s']} s, "
        f"checked {doc['check_s']} s; ok={doc['ok']}",
        file=sys.stderr,
    )
    assert doc["ok"], doc["text"]
    assert doc["tasks"] > 0, "synod check found no task on the log: wrong prefix?"
    return doc
