"""`synod team run` on the real broker: a paper project through the services.

Every service is a process (LocalRun, sim backend). The project goes in as a
TaskSubmitted with an explicit plan; the planner dispatches ready steps to a
pool of 3 coders. Each step must complete once, no step may be requested
before its dependencies completed, and the report must come from the log.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from synod.llm.simcontent import expected_answer
from synod.localkafka import free_port
from synod.localrun import LocalRun
from synod.plan.dag import load_project
from synod.team.run import TeamError, run_once
from synod.team.workspace import materialise
from synod.wire import StepCompleted, StepRequested, TaskCompleted

pytestmark = pytest.mark.e2e
# A copy of the paper's amdahl_mathutilities20/p09.json (20 steps, p = 0.9).
PROJECT = Path(__file__).parent / "data" / "p09.json"


def _project() -> Path:
    return PROJECT


@pytest.fixture
async def team(kafka: Any, tmp_path: Path) -> AsyncIterator[LocalRun]:
    os.environ["SYNOD_LLM_BACKEND"] = "sim"
    os.environ["SYNOD_LLM_SIM_LATENCY"] = "exponential:0.05"
    run = LocalRun(
        bootstrap=kafka.bootstrap,
        prefix=f"team{uuid.uuid4().hex[:6]}.",
        run_dir=tmp_path,
        gateway_port=free_port(),
        replicas={"consensus": 1, "planner": 1, "coder": 3, "reviewer": 3},
    )
    try:
        await run.start()
        await run.wait_ready()
        yield run
    finally:
        run.stop()
        for name in ("SYNOD_LLM_BACKEND", "SYNOD_LLM_SIM_LATENCY"):
            os.environ.pop(name, None)


async def test_a_paper_project_runs_on_three_coders_every_step_once(team: LocalRun) -> None:
    plan = load_project(_project())
    task_id = f"team-{uuid.uuid4().hex[:8]}"
    # The project's tests: each module's solve() returns the sim's correct answer,
    # so they pass only if every file is in the workspace with its step's code.
    checks = [
        f"def test_{sid.replace('-', '_')}():\n"
        f"    assert importlib.import_module({path[:-3]!r}).solve() == "
        f"{expected_answer(task_id, sid)}\n"
        for sid in plan.ids
        for path in plan.step(sid).files
    ]
    tests = {"test_suite.py": "import importlib\n\n\n" + "\n\n".join(checks)}
    seen: list[Any] = []
    report, log = await run_once(
        plan,
        bootstrap=team.bootstrap,
        prefix=team.prefix,
        agents=3,
        mode="synod",
        task_id=task_id,
        timeout_s=240,
        on_event=seen.append,
        tests=tests,
    )
    assert isinstance(log.outcome, TaskCompleted), log.outcome
    assert set(log.winners) == set(plan.ids)
    # Once each: a step completes at most once per attempt requested, and only a
    # hedge (one extra attempt) can add a second completion, which is ignored.
    assert all(1 <= log.completions[s] <= log.requests[s] <= 2 for s in plan.ids)
    # Ready steps only: a request comes after every dependency's completion.
    done: set[str] = set()
    for env in seen:
        if isinstance(env.body, StepRequested):
            missing = [d for d in plan.depends_on(env.body.step_id) if d not in done]
            assert not missing, f"{env.body.step_id} requested before {missing}"
        elif isinstance(env.body, StepCompleted):
            done.add(env.body.step_id)
    assert report.n == 3
    assert report.mode == "synod"
    assert report.makespan_s >= report.graph_bound_s * 0.999
    assert report.messages == sum(log.by_kind.values()) > len(plan)
    assert report.parallel_fraction == pytest.approx(0.9, abs=0.051)
    print(report.to_json())

    # The workspace materialises from synod.workspace alone: every planned file,
    # written by its own step, as valid Python; nothing lost.
    space = await materialise(team.bootstrap, team.prefix, log.task_id, log.winner_request)
    planned = {path: step.step_id for step in plan for path in step.files}
    assert set(space.files) == set(planned)
    assert space.writes == len(planned)  # hedged losers' writes left out
    assert all(space.steps[path] == {sid} for path, sid in planned.items())
    for path, content in space.files.items():
        compile(content, path, "exec")
    assert report.lost_writes == 0
    assert report.tests_passed is True
    assert space.stats.conflicts_opened == 0

    # More agents than running coders: refused before anything is submitted.
    with pytest.raises(TeamError, match="needs 5 running coder instances"):
        await run_once(
            plan,
            bootstrap=team.bootstrap,
            prefix=team.prefix,
            agents=5,
            mode="synod",
            task_id="never",
        )

    # The CLI, as a user runs it: one JSON object per run.
    env = {**os.environ, "SYNOD_BOOTSTRAP": team.bootstrap, "SYNOD_TOPIC_PREFIX": team.prefix}
    argv = [sys.executable, "-m", "synod.cli", "team", "run", str(_project())]
    argv += ["--agents", "2", "--json", "--timeout", "240"]
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0]["n"] == 2
    assert lines[0]["mode"] == "synod"
    assert {"makespan_s", "amdahl_speedup", "graph_bound_s", "clairvoyant_makespan_s"} <= set(
        lines[0]
    )
