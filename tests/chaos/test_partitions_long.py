"""The longer partition scenarios (docs/cap.md), run by `make test-cap`, not `make test`.

- the planner cut from the broker mid-task, then healed: the task finishes once;
- every service cut for 30 s: everything stalls, then resumes; 0 lost, 0 duplicated;
- a gray failure (latency on one coder's zone): the hedge rule runs the straggler again
  on the healthy coder (its key picked by the owners the heartbeats report), which wins.

Real broker, real toxiproxy, every service a process; each ends with `synod check`.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from tests.localteam import (
    CODEC,
    assert_log_checks,
    local_team,
    outcomes_by_task,
    read_topic,
    respawning,
    send_goals,
)

from synod.cli.teamrun import submission
from synod.core.plan.dag import Plan
from synod.dev.netfaults import NetFaults
from synod.transport import Publisher
from synod.transport.admin import partition_counts
from synod.transport.partitioner import partition_for
from synod.transport.topics import HEARTBEATS, RESULTS, STEPS_CODER, TASK_EVENTS, TASKS, topic_name
from synod.wire import Heartbeat, PlanStep, StepCompleted, StepRequested, TaskCompleted

pytestmark = pytest.mark.skipif(
    os.environ.get("SYNOD_TEST_CAP") != "1", reason="long partition runs: `make test-cap`"
)

TEAM = {
    "planner": 1,
    "researcher": 1,
    "coder": 2,
    "reviewer": 3,
    "consensus": 1,
    "supervisor": 1,
    "gateway": 0,
}
# Every instance in a zone: z1 planner, z2 workers, z3 reviewers, z4 the rest.
ALL_ZONED = {
    "planner-0": "z1",
    "researcher-0": "z2",
    "coder-0": "z2",
    "coder-1": "z2",
    "reviewer-0": "z3",
    "reviewer-1": "z3",
    "reviewer-2": "z3",
    "consensus-0": "z4",
    "supervisor-0": "z4",
}
ENV = {"SYNOD_VOTE_DEADLINE_S": "10", "SYNOD_LLM_SIM_LATENCY": "fixed:0.5"}


async def _step_requested(run: Any, task: str, timeout_s: float = 90) -> None:
    def mid_task(records: list[Any]) -> bool:
        return any(
            isinstance((env := CODEC.decode(r.value)).body, StepRequested) and env.task_id == task
            for r in records
        )

    await read_topic(run, TASK_EVENTS, mid_task, timeout_s)


async def test_the_planner_cut_mid_task_finishes_the_task_once(
    kafka: Any, netfaults: NetFaults, tmp_path: Path
) -> None:
    async with (
        local_team(
            kafka.bootstrap, tmp_path, "capp", TEAM, ENV, zones={"planner-0": "z1"}, net=netfaults
        ) as run,
        respawning(run),
    ):
        await send_goals(run, {"planner-cut": "write a haiku about partitions"})
        await _step_requested(run, "planner-cut")
        netfaults.cut("z1")
        await asyncio.sleep(15)  # the partition lasts: no event to wait for
        netfaults.heal("z1")
        records = await read_topic(
            run, RESULTS, lambda rs: "planner-cut" in outcomes_by_task(rs), 180, drain_s=5
        )
        assert len(outcomes_by_task(records)["planner-cut"]) == 1
        await assert_log_checks(run)


async def test_every_service_cut_for_30_s_stalls_then_loses_and_duplicates_nothing(
    kafka: Any, netfaults: NetFaults, tmp_path: Path
) -> None:
    tasks = {f"all-{i}": f"task {i}: sum a list" for i in range(4)}
    async with (
        local_team(
            kafka.bootstrap, tmp_path, "capa", TEAM, ENV, zones=ALL_ZONED, net=netfaults
        ) as run,
        respawning(run),
    ):
        await send_goals(run, tasks)
        await _step_requested(run, "all-0")
        for zone in ("z1", "z2", "z3", "z4"):
            netfaults.cut(zone)
        cut_at = time.monotonic()
        window_ends = cut_at + 25
        during = await read_topic(
            run, RESULTS, lambda rs: time.monotonic() > window_ends, timeout_s=40
        )
        # Nothing can finish while every service is cut (a result already on its
        # way before the cut is the most that may land).
        assert len(outcomes_by_task(during)) <= 1
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - cut_at)))
        netfaults.heal_all()
        records = await read_topic(
            run, RESULTS, lambda rs: set(tasks) <= set(outcomes_by_task(rs)), 300, drain_s=5
        )
        outcomes = outcomes_by_task(records)
        assert {t: len(outcomes[t]) for t in tasks} == dict.fromkeys(tasks, 1)
        await assert_log_checks(run)


async def test_a_gray_coder_is_routed_around_by_the_hedge_rule(
    kafka: Any, netfaults: NetFaults, tmp_path: Path
) -> None:
    # 16 steps, a cap above them: hedges are never held back for want of room. (With
    # `team.agents` 2, the gray coder's two stragglers fill the team's two slots and
    # no copy goes out until one of them ends: the cap counts attempts, not coders.)
    # The steps' keys hash to 7 even and 9 odd partitions: whichever half the slow
    # coder holds, the healthy one finishes the five steps the rule waits for first.
    steps = [PlanStep(step_id=f"s{i}", title=f"file {i}", files=[f"f{i}.py"]) for i in range(16)]
    plan = Plan.from_steps(steps, name="gray")
    replicas = {**TEAM, "researcher": 0}
    async with (
        local_team(
            kafka.bootstrap, tmp_path, "capg", replicas, ENV, zones={"coder-1": "z5"}, net=netfaults
        ) as run,
        respawning(run),
    ):
        netfaults.slow("z5", latency_ms=2500)
        publisher = Publisher(run.bootstrap, client_id="capg")
        await publisher.start()
        started = time.monotonic()
        try:
            await publisher.publish(
                topic_name(TASKS, run.prefix), submission(plan, "gray", "capg", agents=32)
            )
        finally:
            await publisher.stop()
        records = await read_topic(
            run, TASK_EVENTS, lambda rs: _outcome(rs, "gray") is not None, 300
        )
        took = time.monotonic() - started
        outcome = _outcome(records, "gray")
        assert isinstance(outcome, TaskCompleted)
        # Where each request really went (the broker's partition) and who held that
        # partition then (the coders' own heartbeats): evidence from outside the planner.
        requests = await read_topic(run, STEPS_CODER, lambda rs: len(rs) >= 16, 30, drain_s=2)
        beats = await read_topic(run, HEARTBEATS, lambda rs: bool(rs), 30, drain_s=2)
        coder_topic = topic_name(STEPS_CODER, run.prefix)
        [partitions] = (await partition_counts(run.bootstrap, [coder_topic])).values()
        routes = _routes(records, requests, beats, coder_topic, partitions)
        for step, r in sorted(routes.items()):
            shown = {k: v for k, v in r.items() if k != "copy_output"}
            print(f"hedged {step}: {shown}")
        chance = sum(r["todays_key_on"] == r["straggler_on"] for r in routes.values())
        print(
            f"task took {took:.1f} s; {len(routes)} hedged; today's key would have sent "
            f"{chance} of them to their straggler's coder"
        )
        assert routes, "no step was hedged though one coder was slowed"
        # The rule: a copy goes to another coder than its straggler's, so the gray
        # coder's stragglers are all run again on the healthy one, and win there.
        around = {s: r for s, r in routes.items() if r["straggler_on"] == "coder-1"}
        assert around, f"no straggler of the slow coder was hedged: {routes}"
        for step, r in routes.items():
            assert r["copy_on"] != r["straggler_on"], (step, r)
        for step, r in around.items():
            assert r["copy_on"] == "coder-0", (step, r)
            assert r["ran_on"] == "coder-0", (step, r)
            assert r["won"] == r["copy_attempt"], (step, r)
            assert r["copy_output"] in outcome.result, (step, r)
        await assert_log_checks(run)


def _outcome(records: list[Any], task: str) -> Any:
    for r in records:
        env = CODEC.decode(r.value)
        if env.task_id == task and type(env.body).__name__ in ("TaskCompleted", "TaskFailed"):
            return env.body
    return None


def _routes(
    log: list[Any], requests: list[Any], beats: list[Any], coder_topic: str, partitions: int
) -> dict[str, dict[str, Any]]:
    """Per hedged step: the partitions and holders of its straggler and its copy, who
    ran the copy, and which attempt's result the task kept (its first completion)."""
    held: list[tuple[Any, str, set[int]]] = []  # (when, coder, partitions)
    for r in beats:
        env = CODEC.decode(r.value)
        if isinstance(env.body, Heartbeat) and coder_topic in env.body.assigned:
            held.append((env.created_at, env.body.instance, set(env.body.assigned[coder_topic])))

    def holder(partition: int, at: Any) -> str:
        newest: dict[str, tuple[Any, set[int]]] = {}
        for when, coder, parts in held:
            if when <= at and (coder not in newest or newest[coder][0] < when):
                newest[coder] = (when, parts)
        owners = [c for c, (_, parts) in newest.items() if partition in parts]
        return ",".join(sorted(owners)) or "?"

    sent: dict[tuple[str, int], tuple[int, Any]] = {}  # (step, attempt) -> (partition, at)
    for r in requests:
        env = CODEC.decode(r.value)
        if isinstance(env.body, StepRequested) and env.task_id == "gray":
            sent[(env.body.step_id, env.attempt)] = (r.partition, env.created_at)
    copies: dict[str, int] = {}
    won: dict[str, int] = {}
    ran: dict[tuple[str, int], tuple[str, str]] = {}
    for r in log:
        env = CODEC.decode(r.value)
        if env.task_id != "gray":
            continue
        if isinstance(env.body, StepRequested) and env.body.prompt_variant == "hedge":
            copies.setdefault(env.body.step_id, env.attempt)
        elif isinstance(env.body, StepCompleted):
            won.setdefault(env.body.step_id, env.attempt)
            ran[(env.body.step_id, env.attempt)] = (env.sender.instance, env.body.output)
    routes: dict[str, dict[str, Any]] = {}
    for step, copy in copies.items():
        (p0, t0), (p1, t1) = sent[(step, copy - 1)], sent[(step, copy)]
        by, output = ran.get((step, copy), ("", ""))
        todays = partition_for(f"gray/{step}/{copy}".encode(), partitions)
        routes[step] = {
            "straggler_partition": p0,
            "straggler_on": holder(p0, t0),
            "copy_attempt": copy,
            "copy_partition": p1,
            "copy_on": holder(p1, t1),
            "todays_key_on": holder(todays, t1),
            "ran_on": by,
            "won": won.get(step),
            "copy_output": output,
        }
    return routes
