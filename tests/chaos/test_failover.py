"""SIGKILL of one of two researcher replicas in the middle of a 100-task run.

The killed replica is not restarted: its partitions must move to the live one
when its consumer session expires, and every task must still complete. Prints
the time from the kill to the first step the survivor finished on a partition
the dead replica owned (the target is the session timeout plus one second),
and how many finished steps were run a second time.

Execution is at least once: a step that finished in the few milliseconds
between publishing its outcome and committing its offset runs again on the
survivor (its outcome has the same derived id, so consumers drop the copy).
What must not happen is a step finished and committed well before the kill
running again: workers commit within ~20 ms of each step, so one second is
a wide margin.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.localteam import assert_log_checks, environment, outcomes_by_task, read_topic, send_goals

from synod.dev.localkafka import free_port
from synod.dev.localrun import LocalRun
from synod.settings import KafkaSettings
from synod.transport.partitioner import partition_for
from synod.transport.topics import RESULTS, TASK_EVENTS, TASK_PARTITIONS
from synod.wire import Codec, StepCompleted

pytestmark = pytest.mark.timeout(600)
CODEC = Codec()
TASKS_N = 100
# SYNOD_ESCALATE=false: a ballot lost to a kill must end its task, not park it
# for a person this test does not play.
ENV = {
    "SYNOD_LLM_BACKEND": "sim",
    "SYNOD_LLM_SIM_LATENCY": "lognormal:0.3:0.5",
    "SYNOD_ESCALATE": "false",
}


@pytest.fixture
async def team(kafka: Any, tmp_path: Path) -> AsyncIterator[LocalRun]:
    run = LocalRun(
        bootstrap=kafka.bootstrap,
        prefix=f"failover{uuid.uuid4().hex[:6]}.",
        run_dir=tmp_path,
        gateway_port=free_port(),
        replicas={"consensus": 1, "planner": 1, "researcher": 2, "coder": 2, "reviewer": 3},
    )
    with environment(ENV):
        try:
            await run.start()
            await run.wait_ready()
            yield run  # no watch(): the killed replica stays dead
        finally:
            run.stop()


def _work_partition(task_id: str, step_id: str) -> int:
    """The partition of synod.steps.researcher a step went to (the planner keys it task/step)."""
    return partition_for(f"{task_id}/{step_id}".encode(), TASK_PARTITIONS)


async def test_sigkill_of_a_researcher_moves_its_partitions_and_every_task_completes(
    team: LocalRun,
) -> None:
    tasks = [f"f{i}-{uuid.uuid4().hex[:6]}" for i in range(TASKS_N)]
    await send_goals(team, {t: f"Write function {t}" for t in tasks})

    # Kill it early in the research, so work on its partitions is certainly left:
    # waiting for finished tasks instead let a loaded machine finish all research first.
    seen = {"records": 0, "steps": 0}

    def researched(records: list[Any]) -> bool:
        for r in records[seen["records"] :]:  # only what is new since the last call
            env = CODEC.decode(r.value)
            seen["steps"] += env.sender.instance == "researcher-0" and env.type == "StepCompleted"
        seen["records"] = len(records)
        return seen["steps"] >= 5

    await read_topic(team, TASK_EVENTS, researched, 180)
    [victim] = [c for c in team.children if c.instance == "researcher-0"]
    assert victim.proc is not None
    killed_at = time.time()
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()

    results = await read_topic(
        team, RESULTS, lambda rs: set(outcomes_by_task(rs)) >= set(tasks), 300
    )
    outcomes = outcomes_by_task(results)
    assert all({kind for _, kind in outcomes[t]} == {"TaskCompleted"} for t in tasks)

    events = await read_topic(
        team, TASK_EVENTS, lambda rs: set(outcomes_by_task(rs)) >= set(tasks), 60
    )
    done_by: dict[tuple[str, str, int], set[str]] = {}
    dead_owned: set[int] = set()
    when: dict[Any, list[Any]] = {}
    resumed_at: list[float] = []
    for r in events:
        env = CODEC.decode(r.value)
        if not isinstance(env.body, StepCompleted) or env.sender.role != "researcher":
            continue
        key = (env.task_id or "", env.body.step_id, env.attempt)
        done_by.setdefault(key, set()).add(env.sender.instance)
        when.setdefault(key, []).append(
            (env.sender.instance, round(r.timestamp / 1000 - killed_at, 3))
        )
        partition = _work_partition(key[0], key[1])
        if env.sender.instance == "researcher-0":
            dead_owned.add(partition)
    for r in events:
        env = CODEC.decode(r.value)
        if (
            isinstance(env.body, StepCompleted)
            and env.sender.instance == "researcher-1"
            and r.timestamp / 1000 > killed_at
            and _work_partition(env.task_id or "", env.body.step_id) in dead_owned
        ):
            resumed_at.append(r.timestamp / 1000)
    assert dead_owned, "the killed replica had done no work: the kill tested nothing"
    assert resumed_at, "the survivor never worked on the dead replica's partitions"
    redone = [k for k, who in done_by.items() if len(who) > 1]
    session_s = KafkaSettings().session_timeout_ms / 1000
    print(
        f"\nfailover: kill -> first step on the dead replica's partitions "
        f"{min(resumed_at) - killed_at:.2f} s (session timeout {session_s:g} s, "
        f"target {session_s + 1:g} s); steps run twice: {len(redone)}, finished "
        f"{[min(t for w, t in when[k] if w == 'researcher-0') for k in redone]} s before the kill"
    )
    long_done = [k for k in redone if min(t for who, t in when[k] if who == "researcher-0") < -1.0]
    assert not long_done, f"committed steps were run again: {[(k, when[k]) for k in long_done]}"
    await assert_log_checks(team)
