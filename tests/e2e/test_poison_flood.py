"""10,000 poison records flood the input topics while 20 real tasks run.

Every service is a separate process on the real broker (sim backend). One
batching producer injects random bytes, well-formed envelopes with
schema-invalid bodies, Avro records with an unknown schema fingerprint and
oversized records into every topic a service consumes: synod.tasks and
synod.task-events (planner, supervisor), synod.steps.* (researcher, coder) and
synod.votes (each reviewer, the supervisor; consensus skips what it cannot
decode). synod.decisions is left out: no service consumes it, so nothing
could dead-letter what lands there.

What must hold: every injected record is in synod.dlq with a reason, found by
its source topic, partition and offset through the code `synod dlq list
--json` runs; every service process is still up (none was restarted); every
valid task completes; the services' synod_dead_letters_total adds up to what
the DLQ holds. The numbers are printed (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from tests.localteam import assert_log_checks, local_team, outcomes_by_task, read_topic, send_goals

from synod.cli.dlq import read_dead_letters
from synod.core.deadletters import POISON_REASONS
from synod.dev.localrun import LocalRun
from synod.transport.topics import (
    DLQ,
    RESULTS,
    STEPS_CODER,
    STEPS_RESEARCHER,
    TASK_EVENTS,
    TASKS,
    VOTES,
    TopicSpec,
    topic_name,
)
from synod.wire import Codec, DeadLetter
from synod.wire.codec import AVRO_MARKER

pytestmark = pytest.mark.timeout(600)
CODEC = Codec()
FLOOD_N = 10_000
OVERSIZED_N = 25  # 1 MB each: enough to prove the path, not gigabytes through the broker
TASKS_N = 20
FLOODED: tuple[TopicSpec, ...] = (TASKS, TASK_EVENTS, STEPS_RESEARCHER, STEPS_CODER, VOTES)
KINDS = ("random_bytes", "schema_invalid", "unknown_fingerprint")
# What each kind must be dead-lettered as; random bytes may look like anything.
EXPECTED_REASONS: dict[str, frozenset[str]] = {
    "random_bytes": POISON_REASONS,
    "schema_invalid": frozenset({"schema_violation"}),
    "unknown_fingerprint": frozenset({"unknown_schema"}),
    "oversized": frozenset({"oversized"}),
}
# The body type each flooded topic carries, for well-formed envelopes around bad bodies.
TYPE_OF: dict[str, str] = {
    TASKS.name: "TaskSubmitted",
    TASK_EVENTS.name: "StepCompleted",
    STEPS_RESEARCHER.name: "StepRequested",
    STEPS_CODER.name: "StepRequested",
    VOTES.name: "Vote",
}


def _poison(kind: str, spec: TopicSpec, i: int, rng: random.Random) -> bytes:
    if kind == "random_bytes":
        data = rng.randbytes(rng.randint(1, 400))
        return data
    if kind == "schema_invalid":
        if spec is TASKS and i % 2:
            return json.dumps({"task_id": f"flood-{i}", "goal": ""}).encode()  # short form
        envelope = {
            "type": TYPE_OF[spec.name],
            "task_id": f"flood-{i}",
            "sender": {"role": "coder", "instance": "flood"},
            "body": {"step_id": i, "proposal_id": None, "kind": "maybe"},
        }
        return json.dumps(envelope).encode()
    if kind == "unknown_fingerprint":
        return AVRO_MARKER + rng.randbytes(8) + rng.randbytes(rng.randint(0, 200))
    assert kind == "oversized"
    return json.dumps({"task_id": f"flood-{i}", "goal": "x" * (CODEC.max_bytes + 100)}).encode()


async def _flood(run: LocalRun, seed: int) -> tuple[dict[tuple[str, int, int], str], float]:
    """Inject FLOOD_N poison records with one batching producer: position -> kind."""
    rng = random.Random(seed)
    plan: list[tuple[TopicSpec, str, int]] = []
    for i in range(FLOOD_N):
        spec = FLOODED[i % len(FLOODED)]
        kind = "oversized" if i < OVERSIZED_N else KINDS[(i // len(FLOODED)) % len(KINDS)]
        plan.append((spec, kind, i))
    rng.shuffle(plan)
    producer = AIOKafkaProducer(
        bootstrap_servers=run.bootstrap,
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=CODEC.max_bytes + 64 * 1024,
        acks="all",
    )
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        for spec, kind, i in plan:
            value = _poison(kind, spec, i, rng)
            # Mostly task-like keys; some keys that no task id could be.
            key = f"flood-{i}".encode() if i % 7 else rng.randbytes(rng.randint(0, 300))
            future = await producer.send(topic_name(spec, run.prefix), value, key=key)
            pending.append((kind, future))
        placed: dict[tuple[str, int, int], str] = {}
        for kind, future in pending:
            meta = await future
            placed[(meta.topic, meta.partition, meta.offset)] = kind
    finally:
        await producer.stop()
    return placed, time.monotonic() - started


async def _wait_dead_lettered(
    run: LocalRun, wanted: set[tuple[str, int, int]], timeout_s: float
) -> float:
    """Follow synod.dlq until every injected position is there; seconds it took."""
    consumer = AIOKafkaConsumer(
        topic_name(DLQ, run.prefix),
        bootstrap_servers=run.bootstrap,
        auto_offset_reset="earliest",
        group_id=f"check-{uuid.uuid4().hex}",
    )
    await consumer.start()
    missing = set(wanted)
    started = time.monotonic()
    try:
        while missing:
            assert time.monotonic() - started < timeout_s, (
                f"{len(missing)} of {len(wanted)} injected records not in the DLQ "
                f"after {timeout_s:.0f}s, e.g. {sorted(missing)[:3]}"
            )
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    body = CODEC.decode(r.value).body
                    if isinstance(body, DeadLetter):
                        missing.discard((body.source_topic, body.partition, body.offset))
    finally:
        await consumer.stop()
    return time.monotonic() - started


def _metric_total(run: LocalRun, name: str) -> float:
    """Sum of a counter over every instance, from their /metrics."""
    total = 0.0
    for child in run.children:
        urls = [
            json.loads(line)["url"]
            for line in child.log_path.read_text().splitlines()
            if '"health endpoints up"' in line
        ]
        if not urls:
            continue  # the gateway serves its own port; it consumes nothing
        with urllib.request.urlopen(f"{urls[-1]}/metrics", timeout=10) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            total += sum(s.value for s in family.samples if s.name == name)
    return total


@pytest.fixture
async def team(kafka: Any, tmp_path: Path) -> AsyncIterator[LocalRun]:
    replicas = {
        "consensus": 1,
        "planner": 1,
        "researcher": 1,
        "coder": 1,
        "reviewer": 3,
        "supervisor": 1,
        "gateway": 1,
    }
    env = {"SYNOD_LLM_SIM_LATENCY": "exponential:0.05"}
    # A service that dies must stay dead: the test checks every one is still up.
    async with local_team(
        kafka.bootstrap, tmp_path, "flood", replicas, env, respawn_exited=False
    ) as run:
        yield run


async def test_a_poison_flood_is_dead_lettered_while_valid_tasks_complete(
    team: LocalRun,
) -> None:
    tasks = {f"valid-{i}-{uuid.uuid4().hex[:6]}": f"Write helper number {i}" for i in range(20)}
    started = time.monotonic()
    (placed, inject_s), _ = await asyncio.gather(_flood(team, seed=5), send_goals(team, tasks))
    assert len(placed) == FLOOD_N

    drain_s = await _wait_dead_lettered(team, set(placed), timeout_s=180)
    drained_at = time.monotonic() - started
    results = await read_topic(team, RESULTS, lambda rs: set(outcomes_by_task(rs)) >= set(tasks))
    outcomes = outcomes_by_task(results)
    tasks_s = time.monotonic() - started
    completed = [t for t in tasks if {k for _, k in outcomes[t]} == {"TaskCompleted"}]

    # Read back the way `synod dlq list --json` does, between two reads of what the
    # services counted: every injected record in the DLQ once (above) does not mean
    # every group reading its topic has dead-lettered its copy yet (on a loaded CI
    # machine some were still being written a minute later), and a letter is
    # counted once its write is acknowledged.
    counted_before = _metric_total(team, "synod_dead_letters_total")
    letters = await read_dead_letters(team.bootstrap or "", team.prefix)
    by_position = {
        (e.letter.source_topic, e.letter.partition, e.letter.offset): e for e in letters.index
    }
    reasons = Counter(by_position[p].letter.reason for p in placed if p in by_position)
    wrong = [
        (kind, by_position[p].letter.reason, by_position[p].letter.message[:120])
        for p, kind in placed.items()
        if p in by_position and by_position[p].letter.reason not in EXPECTED_REASONS[kind]
    ]
    dead_letters_total = _metric_total(team, "synod_dead_letters_total")  # counted after
    alive = {c.instance: c.alive for c in team.children}

    print(
        f"\npoison flood: injected {FLOOD_N} records in {inject_s:.1f}s "
        f"({Counter(placed.values())}) into {', '.join(s.name for s in FLOODED)}\n"
        f"  dead-lettered: {sum(reasons.values())} distinct, by reason {dict(reasons)}; "
        f"{letters.index.stored} DLQ records (several groups read one topic)\n"
        f"  time to drain: {drain_s:.1f}s after injection, {drained_at:.1f}s from the start\n"
        f"  tasks completed: {len(completed)}/{TASKS_N} within {tasks_s:.1f}s\n"
        f"  synod_dead_letters_total over all instances: {dead_letters_total:.0f}\n"
        f"  processes alive: {sum(alive.values())}/{len(alive)}"
    )
    assert set(placed) <= set(by_position), "an injected record is missing from the DLQ"
    assert all(by_position[p].letter.reason for p in placed)
    assert not wrong, f"{len(wrong)} records with an unexpected reason, e.g. {wrong[:3]}"
    assert reasons["oversized"] == OVERSIZED_N
    assert all(by_position[p].truncated for p, kind in placed.items() if kind == "oversized")
    assert all(alive.values()), f"a service died: {alive}"
    assert all(c.restarts == 0 for c in team.children)
    assert len(completed) == TASKS_N, f"not completed: {sorted(set(tasks) - set(completed))}"
    # Nothing counted is missing from the DLQ, nothing in it was not counted.
    assert counted_before <= letters.index.stored <= dead_letters_total
    await assert_log_checks(team)
