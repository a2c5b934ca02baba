"""Real partitions between reviewers and the broker: cp waits then fails naming the
voters it could not reach; ap completes provisionally and reconciles after the heal.

Every service is a process; reviewer-1 and reviewer-2 reach the broker only through
their zones' toxiproxy proxies (synod.dev.netfaults), and a cut closes every TCP path
they have. The reconcile rule is docs/cap.md's.

ap-3's cut-away jurors reject its first answer on demand (SYNOD_LLM_SIM_WRONG_STEPS):
reviewer-0 alone accepts it provisionally, the full electorate overturns it after
the heal, and the task reopens (a revision) and ends with a second outcome."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.localteam import (
    CODEC,
    assert_log_checks,
    local_team,
    outcomes_by_task,
    read_topic,
    respawning,
    send_goals,
)

from synod.dev.netfaults import NetFaults
from synod.transport.topics import RESULTS
from synod.wire import Reconciled, TaskCompleted, TaskFailed

REPLICAS = {
    "planner": 1,
    "researcher": 1,
    "coder": 1,
    "reviewer": 3,
    "consensus": 1,
    "supervisor": 1,
    "gateway": 1,
}
ENV = {
    # Short ballots so cp's wait stays within a CI minute.
    "SYNOD_VOTE_DEADLINE_S": "5",
    "SYNOD_API_TOKENS": "ops=tok-ops",
    # ap-3's first answer (any ballot), as reviewer-1 and reviewer-2 see it: rejected.
    "SYNOD_LLM_SIM_WRONG_STEPS": "ap-3/answer/b*/reviewer-[12]",
}


def bodies(records: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for r in records:
        env = CODEC.decode(r.value)
        out.setdefault(env.task_id or "", []).append(env.body)
    return out


def gateway(run: Any, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a client of the gateway sees (POST when there is a body)."""
    request = urllib.request.Request(
        f"{run.gateway_url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": "Bearer tok-ops", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


def task_json(run: Any, task: str) -> dict[str, Any]:
    return gateway(run, f"/v1/tasks/{task}")


async def escalation_of(run: Any, task: str) -> dict[str, Any]:
    for _ in range(300):
        found = gateway(run, f"/v1/escalations?task_id={task}")["escalations"]
        if found:
            return dict(found[0])
        await asyncio.sleep(0.5)
    raise AssertionError(f"no escalation for {task}")


def reconciled(records: list[Any], task: str) -> list[Reconciled]:
    return [b for b in bodies(records).get(task, []) if isinstance(b, Reconciled)]


async def test_reviewer_zones_cut_one_then_two_of_three(
    kafka: Any, netfaults: NetFaults, tmp_path: Path
) -> None:
    zones = {"reviewer-1": "z1", "reviewer-2": "z2"}
    async with (
        local_team(
            kafka.bootstrap, tmp_path, "cap", REPLICAS, ENV, zones=zones, net=netfaults
        ) as run,
        respawning(run),
    ):
        # 1 of 3 cut: the quorum (2 of 3) stands; both modes decide, nothing provisional.
        netfaults.cut("z1")
        await send_goals(run, {"cp-1": "add two numbers"}, partition_mode="cp")
        await send_goals(run, {"ap-1": "add two numbers"}, partition_mode="ap")
        records = await read_topic(
            run, RESULTS, lambda rs: {"cp-1", "ap-1"} <= set(outcomes_by_task(rs)), 120
        )
        for task in ("cp-1", "ap-1"):
            [end] = [b for b in bodies(records)[task] if isinstance(b, TaskCompleted)]
            assert not end.provisional, task
            assert end.partition_mode == task[:2]

        # 2 of 3 cut: no quorum of the full electorate is reachable.
        netfaults.cut("z2")
        # cp-2 fails naming the voters (escalation off by its label); cp-3 asks a person.
        await send_goals(
            run, {"cp-2": "add two numbers"}, partition_mode="cp", labels={"escalate": "false"}
        )
        await send_goals(run, {"cp-3": "add two numbers"}, partition_mode="cp")
        await send_goals(
            run, {"ap-2": "add two numbers", "ap-3": "add two numbers"}, partition_mode="ap"
        )
        records = await read_topic(
            run, RESULTS, lambda rs: {"cp-2", "ap-2", "ap-3"} <= set(outcomes_by_task(rs)), 180
        )
        [failed] = [b for b in bodies(records)["cp-2"] if isinstance(b, TaskFailed)]
        assert failed.unreachable == ["reviewer-1", "reviewer-2"], failed
        assert "unreachable voters: reviewer-1, reviewer-2" in failed.reason
        escalated = await escalation_of(run, "cp-3")
        assert escalated["kind"] == "partition", escalated
        assert "unreachable voters: reviewer-1, reviewer-2" in escalated["reason"], escalated
        assert "cp-3" not in outcomes_by_task(records)  # parked, not failed
        [provisional] = [b for b in bodies(records)["ap-2"] if isinstance(b, TaskCompleted)]
        assert provisional.provisional
        assert reconciled(records, "ap-2") == []  # nothing to reconcile with until the heal
        [doomed] = [b for b in bodies(records)["ap-3"] if isinstance(b, TaskCompleted)]
        assert doomed.provisional
        seen = task_json(run, "ap-3")
        assert (seen["state"], seen["settlement"], seen["partition_mode"]) == (
            "completed",
            "provisional",
            "ap",
        ), seen

        netfaults.heal_all()
        records = await read_topic(
            run,
            RESULTS,
            lambda rs: (
                bool(reconciled(rs, "ap-2")) and len(outcomes_by_task(rs).get("ap-3", ())) >= 2
            ),
            180,
        )
        [verdict] = reconciled(records, "ap-2")
        assert verdict.decision_id == provisional.decision_id
        assert verdict.provisional_outcome == "answer"
        assert verdict.confirmed, verdict  # every juror accepts ap-2's answer

        # ap-3: the full electorate rejected what reviewer-0 alone accepted.
        [overturn] = reconciled(records, "ap-3")
        assert (overturn.decision_id, overturn.confirmed) == (doomed.decision_id, False)
        assert overturn.provisional_outcome == "answer" != overturn.outcome
        ends = [b for b in bodies(records)["ap-3"] if isinstance(b, TaskCompleted)]
        assert [e.provisional for e in ends] == [True, False], ends
        assert ends[1].decision_id not in ("", doomed.decision_id)
        # The client sees the new outcome, and that the first one was overturned.
        for _ in range(50):
            seen = task_json(run, "ap-3")
            if seen["state"] == "completed":
                break
            await asyncio.sleep(0.2)
        assert (seen["state"], seen["settlement"]) == ("completed", ""), seen
        assert seen["overturned"] == [doomed.decision_id], seen
        assert seen["result"] == ends[1].result
        # cp never decided without a quorum: no Reconciled, one outcome.
        assert reconciled(records, "cp-2") == []
        # The person cancels the parked cp task: it ends once, as they said.
        gateway(run, "/v1/tasks/cp-3/cancel", {"reason": "the partition outlasted the need"})
        records = await read_topic(run, RESULTS, lambda rs: "cp-3" in outcomes_by_task(rs), 60)
        [cancelled] = [b for b in bodies(records)["cp-3"] if isinstance(b, TaskFailed)]
        assert cancelled.reason.startswith("cancelled by ops"), cancelled
        await assert_log_checks(run)
