"""`synod team run` on the real broker: a paper project through the services.

Every service is a process (LocalRun, sim backend). The project goes in as a
TaskSubmitted with an explicit plan; the planner schedules it on a pool of 3
coders in the mode the task's labels name. Each step must complete once, no
step may be requested before its dependencies completed (synod), each slot
runs one step at a time (central, claim), and the report must come from the
log. Hedging: a step forced slow on its first attempt is hedged, the slow
attempt is cancelled on its coder, and only the hedge's output counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.localteam import assert_log_checks, local_team

from synod.cli.teamrun import TeamError, run_once
from synod.core.plan.dag import load_project
from synod.core.plan.modes import list_order
from synod.core.plan.teampolicy import central_lists
from synod.core.workspace import fold
from synod.dev.localrun import LocalRun
from synod.ids import derived_id
from synod.llm.simcontent import expected_answer
from synod.transport.workspace import materialise, read_records
from synod.wire import Envelope, StepCompleted, StepFailed, StepRequested, TaskCompleted
from synod.wire.messages import FileWritten, StepCancelled, StepClaimed

# A copy of the paper's amdahl_mathutilities20/p09.json (20 steps, p = 0.9).
PROJECT = Path(__file__).parent / "data" / "p09.json"
# A copy of amdahl_mathutilities20/p02.json: 5 independent steps and a chain of 15.
CHAIN_PROJECT = Path(__file__).parent / "data" / "p02.json"


def _project() -> Path:
    return PROJECT


@asynccontextmanager
async def services(kafka: Any, run_dir: Path, **env: str) -> AsyncIterator[LocalRun]:
    """The services as processes on the session's broker, with `env` (SYNOD_*) set."""
    replicas = {"consensus": 1, "planner": 1, "coder": 3, "reviewer": 3}
    async with local_team(kafka.bootstrap, run_dir, "team", replicas, env) as run:
        yield run


@pytest.fixture
async def team(kafka: Any, tmp_path: Path) -> AsyncIterator[LocalRun]:
    async with services(kafka, tmp_path, SYNOD_LLM_SIM_LATENCY="exponential:0.05") as run:
        yield run


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
    argv = [sys.executable, "-m", "synod.cli.main", "team", "run", str(_project())]
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
    await assert_log_checks(team)


async def test_each_mode_runs_the_chain_project_on_three_coders(kafka: Any, tmp_path: Path) -> None:
    """p02 in central, claim and synod mode: every step once, every file, slots honoured.

    Blocked claims are certain in claim mode here, whatever the timing: a slot
    that completes a chain step claims its successor in the same fold, so any
    other chain claim is made while its predecessor is unfinished; and with 3
    slots, 5 independent steps and a chain of 15, the two slots that are not
    running the chain run out of independent steps long before the chain ends.
    """
    plan = load_project(CHAIN_PROJECT)
    planned = {path: step.step_id for step in plan for path in step.files}
    async with services(kafka, tmp_path, SYNOD_LLM_SIM_LATENCY="fixed:0.05") as team:
        reports = {}
        for mode in ("central", "claim", "synod"):
            seen: list[Envelope[Any]] = []
            report, log = await run_once(
                plan,
                bootstrap=team.bootstrap,
                prefix=team.prefix,
                agents=3,
                mode=mode,
                task_id=f"team-{mode}-{uuid.uuid4().hex[:8]}",
                timeout_s=240,
                on_event=seen.append,
            )
            assert isinstance(log.outcome, TaskCompleted), (mode, log.outcome)
            assert set(log.winners) == set(plan.ids)
            space = await materialise(team.bootstrap, team.prefix, log.task_id, log.winner_request)
            assert set(space.files) == set(planned), mode
            assert all(space.steps[path] == {sid} for path, sid in planned.items()), mode
            assert report.lost_writes == 0
            assert report.mode == mode
            requests = [e for e in seen if isinstance(e.body, StepRequested)]
            if mode == "synod":
                assert all(1 <= log.completions[s] <= log.requests[s] <= 2 for s in plan.ids)
            else:
                # No hedging in the paper's teams: one request, one completion per step.
                assert all(log.requests[s] == log.completions[s] == 1 for s in plan.ids), mode
                assert report.hedges == report.cancels == 0
                _assert_one_step_per_slot(seen, 3)
            if mode == "central":
                lists = central_lists(plan, 3)
                dealt = {sid: slot for slot, mine in enumerate(lists) for sid in mine}
                assert all(e.body.agent == dealt[e.body.step_id] for e in requests)
                assert not any(isinstance(e.body, StepClaimed) for e in seen)
                assert report.blocked_claims == 0
                # Each chain step's slot idles next: its own next step is two links on.
                assert report.waits > 0
            if mode == "claim":
                claims = [e.body for e in seen if isinstance(e.body, StepClaimed)]
                assert [c.step_id for c in claims] == list(list_order(plan))  # once each
                slot_of = {c.step_id: c.agent for c in claims}
                assert all(e.body.agent == slot_of[e.body.step_id] for e in requests)
                # A blocked claim's step is requested only after its dependencies.
                for c in claims:
                    _assert_requested_after(seen, c.step_id, plan.depends_on(c.step_id))
                assert report.blocked_claims == sum(1 for c in claims if c.blocked_on) > 0
            reports[mode] = report
            print(report.to_json())
        # Timing is reported, not asserted: the makespans of the three modes.
        print({m: round(r.makespan_s, 3) for m, r in reports.items()})

        # The CLI in a paper mode, as a user runs it.
        env = {**os.environ, "SYNOD_BOOTSTRAP": team.bootstrap, "SYNOD_TOPIC_PREFIX": team.prefix}
        argv = [sys.executable, "-m", "synod.cli.main", "team", "run", str(CHAIN_PROJECT)]
        argv += ["--agents", "3", "--mode", "claim", "--json", "--timeout", "240"]
        done = await asyncio.to_thread(
            subprocess.run, argv, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        [line] = [json.loads(x) for x in done.stdout.splitlines() if x.strip()]
        assert line["mode"] == "claim"
        assert line["blocked_claims"] > 0
        await assert_log_checks(team)


def _assert_one_step_per_slot(seen: list[Envelope[Any]], n: int) -> None:
    """Between a slot's request and that step's completion, the slot gets no other step."""
    busy: dict[int, str] = {}
    for e in seen:
        if isinstance(e.body, StepRequested):
            slot = e.body.agent
            assert slot is not None
            assert 0 <= slot < n
            assert slot not in busy, f"slot {slot} got {e.body.step_id} while on {busy.get(slot)}"
            busy[slot] = e.body.step_id
        elif isinstance(e.body, StepCompleted):
            busy = {k: v for k, v in busy.items() if v != e.body.step_id}


def _assert_requested_after(seen: list[Envelope[Any]], step_id: str, deps: tuple[str, ...]) -> None:
    done: set[str] = set()
    for e in seen:
        if isinstance(e.body, StepCompleted):
            done.add(e.body.step_id)
        elif isinstance(e.body, StepRequested) and e.body.step_id == step_id:
            assert set(deps) <= done, f"{step_id} requested before {set(deps) - done}"
            return
    raise AssertionError(f"{step_id} was never requested")


SLOW_S = 30.0  # the forced straggler's first attempt


async def test_a_hedged_straggler_is_cancelled_and_its_output_appears_once(
    kafka: Any, tmp_path: Path
) -> None:
    """task-1 of p09 sleeps 30 s on its first attempt only; the planner hedges it."""
    plan = load_project(PROJECT)
    slow = "task-1"  # first on the critical path, so it is dispatched at once
    async with services(
        kafka,
        tmp_path,
        SYNOD_LLM_SIM_LATENCY="fixed:0.05",
        SYNOD_LLM_SIM_SLOW_STEPS=f"{slow}={SLOW_S}",
    ) as team:
        task_id = f"team-hedge-{uuid.uuid4().hex[:8]}"
        seen: list[Envelope[Any]] = []
        started = time.monotonic()
        report, log = await run_once(
            plan,
            bootstrap=team.bootstrap,
            prefix=team.prefix,
            agents=3,
            mode="synod",
            task_id=task_id,
            timeout_s=240,
            on_event=seen.append,
        )
        assert isinstance(log.outcome, TaskCompleted), log.outcome
        straggler = derived_id(task_id, f"step/{slow}/0")
        hedge = derived_id(task_id, f"step/{slow}/1")
        hedges = [e for e in seen if isinstance(e.body, StepRequested) and e.body.prompt_variant]
        assert [(e.body.step_id, e.message_id) for e in hedges] == [(slow, hedge)]
        assert log.winner_request[slow] == hedge  # the first result won, the hedge's
        [cancel] = [e.body for e in seen if isinstance(e.body, StepCancelled)]
        assert (cancel.step_id, cancel.request_ids, cancel.reason) == (
            slow,
            [straggler],
            "hedge_lost",
        )
        assert report.hedges == 1
        assert report.cancels == 1
        # The run did not wait for the straggler (it would have ended after 30 s).
        assert report.makespan_s < SLOW_S
        print(report.to_json())

        # The coder running the straggler stopped it: its log says so...
        lines = _json_lines(tmp_path, "coder-*.log")
        stopped = [x for x in lines if x.get("event") == "step cancelled"]
        assert [x.get("request_id") for x in stopped] == [straggler], stopped
        # ...and past the time the straggler would have finished, nothing came from it.
        wait_until = started + SLOW_S + 5
        late = await _outcomes_of(team, task_id, straggler, wait_until)
        assert late == [], late
        records = await read_records(team.bootstrap, team.prefix, task_id)
        writes = [r for r in records if isinstance(r, FileWritten)]
        path = plan.step(slow).files[0]
        assert [w.step_id for w in writes if w.path == path] == [slow]  # one write, the hedge's
        everything = fold(task_id, records)  # no winners filter: nothing to filter out
        assert everything.writes == sum(len(s.files) for s in plan)
        assert everything.superseded == ()
        assert everything.stats.conflicts_opened == 0
        assert everything.lost == ()
        await assert_log_checks(team)


def _json_lines(run_dir: Path, pattern: str) -> list[dict[str, Any]]:
    """The JSON log lines of the processes whose log files match `pattern`."""
    return [
        json.loads(line)
        for f in sorted(run_dir.glob(pattern))
        for line in f.read_text().splitlines()
        if line.startswith("{")
    ]


async def _outcomes_of(
    team: LocalRun, task_id: str, request_id: str, until: float
) -> list[Envelope[Any]]:
    """Outcomes on the task's log caused by `request_id`, read until `until` (monotonic)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    from synod.transport.admin import partition_counts
    from synod.transport.partitioner import partition_for
    from synod.transport.topics import TASK_EVENTS, topic_name
    from synod.wire import Codec

    assert team.bootstrap is not None
    topic = topic_name(TASK_EVENTS, team.prefix)
    count = (await partition_counts(team.bootstrap, [topic]))[topic]
    tp = TopicPartition(topic, partition_for(task_id.encode(), count))
    consumer = AIOKafkaConsumer(bootstrap_servers=team.bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[Envelope[Any]] = []
    codec = Codec()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        # Bounded by `until`: waiting for something that must not happen.
        while time.monotonic() < until:
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                for r in records:
                    e = codec.decode(r.value)
                    if isinstance(e.body, StepCompleted | StepFailed) and request_id in e.causes:
                        found.append(e)
    finally:
        await consumer.stop()
    return found
