"""The whole team, every service a separate process, on the real broker.

Tasks go in through the gateway and as raw JSON from a plain Kafka producer;
each must end once with TaskCompleted on synod.results, with its log in causal
order. Malformed tasks land in the dead-letter topic with their bytes and the
reason. A planner killed with SIGKILL mid-run is restarted and every task
still completes exactly once; it restores its partitions from the snapshots
its predecessor wrote (every half second here) and folds only their tails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.localteam import assert_log_checks, local_team, outcomes_by_task, read_topic, send_raw

from synod.dev.localrun import LocalRun
from synod.transport.topics import DLQ, RESULTS, TASK_EVENTS, TASKS, topic_name
from synod.wire import Codec, DeadLetter

CODEC = Codec()


@pytest.fixture
async def team(kafka: Any, tmp_path: Path) -> AsyncIterator[LocalRun]:
    env = {"SYNOD_LLM_SIM_LATENCY": "exponential:0.05", "SYNOD_PLANNER_SNAPSHOT_INTERVAL_S": "0.5"}
    replicas = {"consensus": 1, "planner": 1, "researcher": 1, "coder": 2, "reviewer": 3}
    async with local_team(kafka.bootstrap, tmp_path, "e2e", {**replicas, "gateway": 1}, env) as run:
        yield run


def _post(run: LocalRun, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{run.gateway_url}/v1/tasks",
        data=body,
        method="POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _assert_causal(log: list[Any], task_ids: set[str]) -> None:
    """In each task's log, a cause that is in the log comes before what it caused."""
    envelopes = [CODEC.decode(r.value) for r in sorted(log, key=lambda r: (r.partition, r.offset))]
    logged: dict[str, set[str]] = {}
    for env in envelopes:
        logged.setdefault(env.task_id or "", set()).add(env.message_id)
    earlier: dict[str, set[str]] = {}
    for env in envelopes:
        if env.task_id not in task_ids:
            continue
        before = earlier.setdefault(env.task_id, set())
        missing = [c for c in env.causes if c in logged[env.task_id] and c not in before]
        assert not missing, f"{env.task_id}: {env.type} came before its cause {missing}"
        before.add(env.message_id)


async def test_tasks_from_the_gateway_and_from_raw_kafka_all_complete_in_causal_order(
    team: LocalRun,
) -> None:
    via_kafka = {f"raw-{i}-{uuid.uuid4().hex[:6]}" for i in range(50)}
    await send_raw(
        team,
        [
            (t, json.dumps({"task_id": t, "goal": f"Write helper number {i}"}).encode())
            for i, t in enumerate(sorted(via_kafka))
        ],
    )
    via_gateway = set()
    for i in range(50):
        status, doc = await asyncio.to_thread(
            _post, team, json.dumps({"goal": f"Implement parser {i}"}).encode()
        )
        assert status == 202, doc
        via_gateway.add(doc["task_id"])
    everyone = via_kafka | via_gateway

    results = await read_topic(team, RESULTS, lambda rs: set(outcomes_by_task(rs)) >= everyone, 240)
    outcomes = outcomes_by_task(results)
    for task in everyone:
        assert len(outcomes[task]) == 1, f"{task} ended {len(outcomes[task])} times"
        [(_, kind)] = outcomes[task]
        assert kind == "TaskCompleted", task
    # The outcome is written to the task's log before synod.results: read up to it.
    log = await read_topic(team, TASK_EVENTS, lambda rs: set(outcomes_by_task(rs)) >= everyone, 60)
    _assert_causal(log, everyone)
    await assert_log_checks(team)


async def test_malformed_tasks_go_to_the_dead_letter_topic_with_their_bytes(
    team: LocalRun,
) -> None:
    broken = b'{"task_id": "bad-1", "goal": '
    invalid = b'{"task_id": "bad-2", "reviewers": 0}'
    await send_raw(team, [("bad-1", broken), ("bad-2", invalid)])
    records = await read_topic(team, DLQ, lambda rs: len(rs) >= 2, 60)
    letters = {CODEC.decode(r.value).body.value: CODEC.decode(r.value).body for r in records}
    assert isinstance(letters[broken], DeadLetter)
    assert letters[broken].reason == "undecodable"
    assert letters[invalid].reason == "schema_violation"
    assert "goal" in letters[invalid].message
    assert letters[invalid].source_topic == topic_name(TASKS, team.prefix)
    # The services are still up and still complete tasks.
    await send_raw(team, [("ok-1", b'{"task_id": "ok-1", "goal": "still working?"}')])
    results = await read_topic(team, RESULTS, lambda rs: "ok-1" in outcomes_by_task(rs), 60)
    assert outcomes_by_task(results)["ok-1"]
    await assert_log_checks(team)


async def test_sigkill_of_the_planner_mid_run_loses_no_task_and_ends_each_once(
    team: LocalRun,
) -> None:
    tasks = [f"k-{i}-{uuid.uuid4().hex[:6]}" for i in range(30)]
    await send_raw(team, [(t, json.dumps({"task_id": t, "goal": "do it"}).encode()) for t in tasks])
    # Kill it once some, not all, tasks have ended.
    await read_topic(team, RESULTS, lambda rs: len(outcomes_by_task(rs)) >= 5, 120)
    [planner] = [c for c in team.children if c.role == "planner"]
    assert planner.proc is not None
    # A snapshot ahead of the kill: the successor must restore it, not replay.
    await wait_for_log(planner.log_path, "planner snapshot written", 30)
    os.kill(planner.proc.pid, signal.SIGKILL)
    planner.proc.wait()
    killed_at = len(_log_events(planner.log_path))
    planner.start()  # what `synod up` does for a dead child
    results = await read_topic(
        team, RESULTS, lambda rs: set(outcomes_by_task(rs)) >= set(tasks), 240
    )
    outcomes = outcomes_by_task(results)
    for task in tasks:
        assert len(outcomes[task]) == 1, f"{task} ended {len(outcomes[task])} times"
        assert next(iter(outcomes[task]))[1] == "TaskCompleted"
    # The outcomes may all have been out before the kill: wait for the successor.
    await wait_for_log(planner.log_path, "rebuilt task state", 60, after=killed_at)
    rebuilt = [
        e
        for e in _log_events(planner.log_path)[killed_at:]
        if e.get("event") == "rebuilt task state"
    ]
    assert any(e["from_snapshot"] for e in rebuilt), rebuilt
    await assert_log_checks(team)


def _log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            events.append(json.loads(line))
    return events


async def wait_for_log(path: Path, event: str, timeout_s: float, after: int = 0) -> None:
    """Until `event` is logged in `path` (in its lines from `after` on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not any(e.get("event") == event for e in _log_events(path)[after:]):
        assert loop.time() < deadline, f"no {event!r} in {path} within {timeout_s:g} s"
        await asyncio.sleep(0.2)
