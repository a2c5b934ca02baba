"""A zombie writer on the real broker: fenced in `strong`, merged in `eventual`.

Every service is a process (LocalRun, sim backend). A chain of coding steps
rewrites one file (s1 writes a.py, s2 rewrites it, s3..s6 write other files
after it). Once s2 has completed, the test publishes what a zombie copy of s2
would: a write of a.py that read it before s1 wrote it (empty base, the
oldest lease). Nothing else is faked: the planner, coders and the fold are
the real ones.

- strong: the zombie's lease was superseded, so the fold fences it off
  (stale_token) and a.py holds s2's write, with or without the task log.
- eventual: the zombie is accepted as concurrent with s2's write; the
  planner finds the conflict before the vote, a merge step gets both
  versions and writes one based on both, and the conflict is on record as
  resolved by it. Nothing is lost in either mode.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from tests.localteam import assert_log_checks, local_team

from synod.cli.follow import RunLog
from synod.cli.teamrun import submission
from synod.core.plan.dag import Plan
from synod.core.workspace import Materialised, fold, write_id_for
from synod.dev.localrun import LocalRun
from synod.transport import Publisher
from synod.transport.partitioner import partition_for
from synod.transport.security import client_security
from synod.transport.topics import TASK_EVENTS, TASKS, WORKSPACE, topic_name
from synod.transport.workspace import materialise, publish_record, read_records
from synod.wire import Codec, Envelope, PlanStep, Sender, StepCompleted, StepRequested
from synod.wire import TaskCompleted as Done
from synod.wire.messages import FileWritten

STEPS = [
    PlanStep(step_id="s1", title="first a", files=["a.py"]),
    PlanStep(step_id="s2", title="rewrite a", depends_on=["s1"], files=["a.py"]),
    *(
        PlanStep(step_id=f"s{i}", title=f"file {i}", depends_on=[f"s{i - 1}"], files=[f"f{i}.py"])
        for i in range(3, 7)
    ),
]
ZOMBIE = "ZOMBIE = 'a copy of s2 that read a.py before s1 wrote it'\n"


@pytest.fixture
async def team(kafka: Any, tmp_path: Path) -> AsyncIterator[LocalRun]:
    # s3..s6 take >= 4 x 0.4 s after s2: the zombie lands long before the vote.
    env = {"SYNOD_LLM_SIM_LATENCY": "fixed:0.4"}
    replicas = {"consensus": 1, "planner": 1, "coder": 2, "reviewer": 3}
    async with local_team(kafka.bootstrap, tmp_path, "tws", replicas, env) as run:
        yield run


async def _run_with_zombie(
    team: LocalRun, consistency: str, timeout_s: float = 180.0
) -> tuple[RunLog, list[Envelope[Any]], FileWritten]:
    """Run the chain as one task; publish the zombie write once s2 completed."""
    task_id = f"tws-{consistency}-{uuid.uuid4().hex[:6]}"
    plan = Plan.from_steps(STEPS, name="zombie")
    sent = submission(plan, task_id, "tws", agents=2)
    sent = sent.model_copy(
        update={"body": sent.body.model_copy(update={"consistency": consistency})}
    )
    zombie = FileWritten(
        path="a.py",
        content=ZOMBIE,
        writer="coder-zombie",
        step_id="s2",
        write_id=f"zombie-{task_id}",
        base_version={},
        lease_token=1 if consistency == "strong" else None,  # s1's grant, long superseded
    )
    events = topic_name(TASK_EVENTS, team.prefix)
    tp = TopicPartition(events, partition_for(task_id.encode(), TASK_EVENTS.partitions))
    consumer = AIOKafkaConsumer(
        **client_security(),
        bootstrap_servers=team.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    publisher = Publisher(team.bootstrap, client_id="tws")
    await consumer.start()
    await publisher.start()
    log, seen, codec, zombie_sent = RunLog(task_id), [], Codec(), False
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        await publisher.publish(topic_name(TASKS, team.prefix), sent)
        deadline = time.monotonic() + timeout_s
        while not log.done:
            assert time.monotonic() < deadline, f"{task_id} not done: {sorted(log.winners)}"
            batch = await consumer.getmany(tp, timeout_ms=300)
            for records in batch.values():
                for r in records:
                    env = codec.decode(r.value)
                    if env.task_id != task_id:
                        continue
                    log.apply(env)
                    seen.append(env)
            if not zombie_sent and "s2" in log.winners:
                assert "s6" not in log.winners, "the chain finished before the zombie"
                envelope = Envelope.new(
                    zombie,
                    sender=Sender(role="coder", instance="coder-zombie"),
                    task_id=task_id,
                    message_id=zombie.write_id,
                )
                await publish_record(publisher, topic_name(WORKSPACE, team.prefix), envelope)
                zombie_sent = True
    finally:
        await publisher.stop()
        await consumer.stop()
    assert zombie_sent
    return log, seen, zombie


def _winning_write(records: list[Any], log: RunLog, step: str, path: str) -> FileWritten:
    wid = write_id_for(log.winner_request[step], path)
    (write,) = [r for r in records if isinstance(r, FileWritten) and r.write_id == wid]
    return write


async def test_strong_a_zombie_write_is_fenced_and_the_file_holds_the_newest_write(
    team: LocalRun,
) -> None:
    log, _, zombie = await _run_with_zombie(team, "strong")
    assert isinstance(log.outcome, Done), log.outcome
    records = await read_records(team.bootstrap, team.prefix, log.task_id)
    s2 = _winning_write(records, log, "s2", "a.py")
    assert s2.base_version  # s2 built on s1's version: a rewrite, not a new file
    for space in (
        await materialise(team.bootstrap, team.prefix, log.task_id, log.winner_request),
        fold(log.task_id, records),  # from the workspace topic alone
    ):
        assert space.mode == "strong"
        assert space.files["a.py"] == s2.content != ZOMBIE
        assert [(r.write_id, r.reason) for r in space.rejected] == [
            (zombie.write_id, "stale_token")
        ]
        assert space.conflicts == ()
        assert space.lost == ()
        assert set(space.files) == {"a.py", "f3.py", "f4.py", "f5.py", "f6.py"}
    await assert_log_checks(team)


async def test_eventual_a_zombie_write_is_a_conflict_the_planner_merges_before_the_vote(
    team: LocalRun,
) -> None:
    log, seen, zombie = await _run_with_zombie(team, "eventual")
    assert isinstance(log.outcome, Done), log.outcome
    records = await read_records(team.bootstrap, team.prefix, log.task_id)
    s2 = _winning_write(records, log, "s2", "a.py")

    # The merge step got both versions, and ran before the vote was asked for.
    merges = [
        e for e in seen if isinstance(e.body, StepRequested) and e.body.step_id == "merge:a.py"
    ]
    assert len(merges) == 1
    assert set(merges[0].body.inputs.values()) == {s2.content, ZOMBIE}
    kinds = [e.type for e in seen]
    merged_at = next(
        i
        for i, e in enumerate(seen)
        if isinstance(e.body, StepCompleted) and e.body.step_id == "merge:a.py"
    )
    assert "VoteRequested" not in kinds[:merged_at]

    space: Materialised = await materialise(
        team.bootstrap, team.prefix, log.task_id, log.winner_request
    )
    assert space.mode == "eventual"
    assert space.conflicted == {}
    (conflict,) = space.conflicts
    assert not conflict.open
    assert {s.write_id for s in conflict.siblings} == {s2.write_id, zombie.write_id}
    merge = _winning_write(records, log, "merge:a.py", "a.py")
    assert conflict.resolved_by == merge.write_id
    assert space.files["a.py"] == merge.content
    assert space.stats.concurrent_writes == 1
    assert space.stats.conflicts_resolved == 1
    assert space.lost == ()
    assert space.rejected == ()
    await assert_log_checks(team)
