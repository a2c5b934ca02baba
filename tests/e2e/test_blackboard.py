"""Strong vs eventual shared knowledge, with every service a process on a real broker.

Two researchers write the same key of the task's blackboard: r1 reads an old
source (the simulated model then gives a stale value, with low confidence),
r2 is slow and right. The coder needs only r1. Nothing is faked: the planner,
researchers, coder, reviewers, consensus and gateway are the real services
(sim LLM backend).

- strong: the planner holds r2 until r1's facts are decided and the coder
  until r2's are, so r2 reads r1's fact and replaces it; the coder is handed
  only decided facts; no reconcile step.
- eventual: r1 and r2 run at once; the coder starts on the board as it is
  (r1's stale fact only); the conflict and the stale read are reconciled by
  a reconcile step before the vote.

Both end with the true value, and the result, the gateway's task JSON and
`synod status` say which consistency the task ran with.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.localteam import (
    CODEC,
    assert_log_checks,
    local_team,
    outcomes_by_task,
    read_topic,
    send_goals,
)

from synod.core.blackboard import RECONCILE_STEP
from synod.dev.localrun import LocalRun
from synod.llm.simcontent import STALE_MARKER, true_fact
from synod.transport.topics import RESULTS, TASK_EVENTS
from synod.wire import StepCompleted, StepRequested, TaskCompleted
from synod.wire.messages import FactPublished

PLAN = [
    {
        "step_id": "r1",
        "role": "researcher",
        "title": "Survey the old notes",
        "description": f"Read the 2019 survey. [{STALE_MARKER}]",
    },
    {
        "step_id": "r2",
        "role": "researcher",
        "title": "Measure it now",
        "description": "Measure the current system.",
    },
    {"step_id": "c1", "role": "coder", "title": "Write it", "depends_on": ["r1"]},
]


@pytest.fixture
async def team(kafka: Any, tmp_path: Path) -> AsyncIterator[LocalRun]:
    env = {"SYNOD_LLM_SIM_LATENCY": "fixed:0.2", "SYNOD_LLM_SIM_SLOW_STEPS": "r2=2.5"}
    # One researcher runs r1 and r2 at once (a lane per step); one juror keeps it short.
    replicas = {"consensus": 1, "planner": 1, "researcher": 1, "coder": 1, "reviewer": 1}
    replicas |= {"gateway": 1}
    async with local_team(kafka.bootstrap, tmp_path, "bb", replicas, env) as run:
        yield run


def _task_log(records: list[Any], task_id: str) -> list[Any]:
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    return [e for e in (CODEC.decode(r.value) for r in ordered) if e.task_id == task_id]


def _index(log: list[Any], kind: type, step_id: str) -> int:
    return next(
        i for i, e in enumerate(log) if isinstance(e.body, kind) and e.body.step_id == step_id
    )


def _shown_as(team: LocalRun, task_id: str, mode: str, truth: str) -> None:
    """The gateway's task JSON and `synod status` name the consistency and the board."""
    with urllib.request.urlopen(f"{team.gateway_url}/v1/tasks/{task_id}", timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["consistency"] == mode
    assert doc["blackboard"]["values"]["approach"] == truth
    assert doc["blackboard"]["conflicts"] == []
    assert doc["blackboard"]["reconciled"] is (mode == "eventual")
    argv = [sys.executable, "-m", "synod.cli.main", "status", task_id]
    shown = subprocess.run(
        [*argv, "--bootstrap", team.bootstrap],
        env={**os.environ, "SYNOD_TOPIC_PREFIX": team.prefix},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"consistency: {mode}" in shown
    assert f"approach = {truth}" in shown


async def test_strong_waits_for_decided_facts_and_eventual_reconciles(team: LocalRun) -> None:
    tasks = {m: f"bb-{m}-{uuid.uuid4().hex[:6]}" for m in ("strong", "eventual")}
    for mode, task_id in tasks.items():
        await send_goals(
            team, {task_id: "Pick an approach"}, plan=PLAN, consistency=mode, reviewers=1
        )
    results = await read_topic(
        team, RESULTS, lambda rs: set(outcomes_by_task(rs)) >= set(tasks.values()), 180
    )
    events = await read_topic(team, TASK_EVENTS, lambda rs: True, 5, drain_s=2.0)
    outcomes = {e.task_id: e.body for e in (CODEC.decode(r.value) for r in results)}

    for mode, task_id in tasks.items():
        done = outcomes[task_id]
        assert isinstance(done, TaskCompleted), done
        assert done.consistency == mode
        truth = true_fact(task_id, "approach")
        assert done.blackboard["approach"] == truth, done.blackboard
        log = _task_log(events, task_id)
        facts = [e.body for e in log if isinstance(e.body, FactPublished)]
        c1 = log[_index(log, StepRequested, "c1")].body
        reconciles = [e for e in log if getattr(e.body, "step_id", "") == RECONCILE_STEP]
        if mode == "strong":
            # r2 is requested only once r1 is done, and reads r1's fact.
            assert _index(log, StepRequested, "r2") > _index(log, StepCompleted, "r1")
            assert _index(log, StepRequested, "c1") > _index(log, StepCompleted, "r2")
            stale = next(f for f in facts if f.step_id == "r1" and f.key == "approach")
            right = next(f for f in facts if f.step_id == "r2" and f.key == "approach")
            assert right.observed == [stale.fact_id]  # r2 read r1's fact and replaced it
            assert right.fact_id in c1.facts
            assert stale.fact_id not in c1.facts
            assert reconciles == []
            assert "## Blackboard (strong)" in done.result
        else:
            # The coder ran on r1's stale fact alone, before r2 finished.
            assert _index(log, StepRequested, "c1") < _index(log, StepCompleted, "r2")
            stale = next(f for f in facts if f.step_id == "r1" and f.key == "approach")
            assert c1.facts == sorted(f.fact_id for f in facts if f.step_id == "r1")
            assert stale.value != truth
            right = next(f for f in facts if f.step_id == "r2" and f.key == "approach")
            assert right.observed == []  # concurrent: a conflict the CRDT kept
            kinds = [type(e.body).__name__ for e in reconciles]
            assert kinds[0] == "StepRequested"
            assert "StepCompleted" in kinds
            fixed = next(f for f in facts if f.step_id == RECONCILE_STEP)
            assert fixed.value == truth
            assert sorted(fixed.observed) == sorted([stale.fact_id, right.fact_id])
            assert f"reconciled by {RECONCILE_STEP}" in done.result

        # The gateway's task JSON and `synod status` say it too.
        await asyncio.to_thread(_shown_as, team, task_id, mode, truth)

    doc = await assert_log_checks(team)
    assert doc["checked"]["facts_read"] >= 4
