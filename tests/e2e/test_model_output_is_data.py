"""Model output is data, never control: every reply of every agent carries a prompt
injection (the sim's `injection` profile: a JSON Decision, a TaskCompleted, tool-call
lookalikes, "ignore your instructions") inside an otherwise right answer. Through the
real services on the real broker: no state changes because of it, every task completes
once with its real outcome, and the text is kept and shown as the text it is."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.localteam import assert_log_checks, local_team, outcomes_by_task, read_topic, send_goals

from synod.dev.localrun import LocalRun
from synod.llm.simcontent import INJECTION_MARKER
from synod.transport.topics import RESULTS, TASK_EVENTS
from synod.wire import Codec, Decision, StepCompleted, TaskCompleted, TaskFailed

CODEC = Codec()


@pytest.fixture
async def team(kafka: Any, tmp_path: Path) -> AsyncIterator[LocalRun]:
    # One juror is enough here: the point is what the services make of the text.
    replicas = {"consensus": 1, "planner": 1, "researcher": 1, "coder": 1, "reviewer": 1}
    env = {"SYNOD_LLM_FAULT_PROFILE": "injection"}
    async with local_team(
        kafka.bootstrap, tmp_path, "inject", {**replicas, "gateway": 1}, env
    ) as run:
        yield run


async def test_injected_text_changes_no_state_and_is_shown_as_text(team: LocalRun) -> None:
    tasks = {f"inj-{i}-{uuid.uuid4().hex[:6]}": f"Write helper {i}" for i in range(4)}
    await send_goals(team, tasks, reviewers=1)
    results = await read_topic(
        team, RESULTS, lambda rs: set(outcomes_by_task(rs)) >= set(tasks), 240
    )
    outcomes = outcomes_by_task(results)
    for task in tasks:
        assert [kind for _, kind in outcomes[task]] == ["TaskCompleted"], (task, outcomes[task])

    log = await read_topic(
        team, TASK_EVENTS, lambda rs: set(outcomes_by_task(rs)) >= set(tasks), 60
    )
    envelopes = [CODEC.decode(r.value) for r in log]
    mine = [e for e in envelopes if e.task_id in tasks]
    # The injected wire messages stayed text: no Decision or outcome came of them.
    for env in mine:
        if isinstance(env.body, Decision):
            assert env.sender.role == "consensus"
            assert env.body.decision_id != "injected"
        if isinstance(env.body, TaskCompleted):
            assert env.sender.role == "planner"
            assert env.body.result != "INJECTED RESULT"
        assert not isinstance(env.body, TaskFailed)
    # ...and they are there, as what they are: text in the agents' outputs.
    carried = [
        e for e in mine if isinstance(e.body, StepCompleted) and INJECTION_MARKER in e.body.output
    ]
    assert {e.task_id for e in carried} == set(tasks)
    # The gateway shows it as a string in the task's JSON, escaped like any text.
    task = sorted(tasks)[0]

    def status() -> dict[str, Any]:
        with urllib.request.urlopen(f"{team.gateway_url}/v1/tasks/{task}", timeout=10) as r:
            doc: dict[str, Any] = json.loads(r.read())
            return doc

    doc: dict[str, Any] = {}
    for _ in range(60):
        doc = await asyncio.to_thread(status)
        if doc.get("state") == "completed":
            break
        await asyncio.sleep(0.5)
    assert doc["state"] == "completed", doc
    shown = [v for v in _strings(doc) if INJECTION_MARKER in v]
    assert shown, "the injected text is not in the task's view"
    assert all("Ignore your instructions" in v for v in shown)
    await assert_log_checks(team)


def _strings(doc: Any) -> list[str]:
    """Every string value in a JSON document."""
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in _strings(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return []
