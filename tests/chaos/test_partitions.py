"""Real partitions between reviewers and the broker: cp waits then fails naming the
voters it could not reach; ap completes provisionally and reconciles after the heal.

Every service is a process; reviewer-1 and reviewer-2 reach the broker only through
their zones' toxiproxy proxies (synod.dev.netfaults), and a cut closes every TCP path
they have. The reconcile rule is docs/cap.md's."""

from __future__ import annotations

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
    "gateway": 0,
}
# Short ballots so cp's wait (3 ballots) stays within a CI minute.
ENV = {"SYNOD_VOTE_DEADLINE_S": "5"}


def bodies(records: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for r in records:
        env = CODEC.decode(r.value)
        out.setdefault(env.task_id or "", []).append(env.body)
    return out


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
        await send_goals(run, {"cp-2": "add two numbers"}, partition_mode="cp")
        await send_goals(run, {"ap-2": "add two numbers"}, partition_mode="ap")
        records = await read_topic(
            run, RESULTS, lambda rs: {"cp-2", "ap-2"} <= set(outcomes_by_task(rs)), 180
        )
        [failed] = [b for b in bodies(records)["cp-2"] if isinstance(b, TaskFailed)]
        assert failed.unreachable == ["reviewer-1", "reviewer-2"], failed
        assert "unreachable voters: reviewer-1, reviewer-2" in failed.reason
        [provisional] = [b for b in bodies(records)["ap-2"] if isinstance(b, TaskCompleted)]
        assert provisional.provisional
        assert reconciled(records, "ap-2") == []  # nothing to reconcile with until the heal

        netfaults.heal_all()
        records = await read_topic(run, RESULTS, lambda rs: bool(reconciled(rs, "ap-2")), 120)
        [verdict] = reconciled(records, "ap-2")
        assert verdict.decision_id == provisional.decision_id
        assert verdict.provisional_outcome == "answer"
        if not verdict.confirmed:
            # Overturned: the task reopened and ended anew.
            records = await read_topic(
                run, RESULTS, lambda rs: len(outcomes_by_task(rs)["ap-2"]) >= 2, 180
            )
        # cp never decided without a quorum: no Reconciled, one outcome.
        assert reconciled(records, "cp-2") == []
        await assert_log_checks(run)
