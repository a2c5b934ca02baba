"""The planner's outbox in the simulation: `ack` (the service's default) and `read-back`.

With `ack` a log record carries its copies and they go on once the log has it
(synod.core.task.carry.sends), so a planner that crashes after the log append
and before its copies leaves a record whose copies are lost; the planner that
reads it back next (a new process, or the other instance, remembering nothing
it forwarded) must send them on. The seed below does that twice; with the
planted bug `ack_trusts_the_log` (every planner record read back counts as
forwarded) the same crashes lose both copies and a task never ends.
"""

from __future__ import annotations

import pytest

from synod.core.bugs import plant
from synod.sim import FAULTS, FaultPlan, SimConfig, SimResult, World
from synod.transport.topics import TASK_EVENTS

PLAN = FaultPlan(faults=frozenset(FAULTS))
# A seed (the determinism test's configuration) whose planners crash twice between a
# log append and its copies: a step request's copy to synod.steps.coder and a vote
# request's to synod.votes.
SEED, TASKS = 7, 3


def _sent_after(world: World, topic: str, message_id: str, t: float) -> int:
    """Copies of `message_id` on `topic` appended after `t`."""
    return sum(
        1
        for part in world.broker.logs[topic]
        for r in part
        if r.visible_at > t
        and (env := world.decode(r)) is not None
        and env.message_id == message_id
    )


def _run(outbox: str = "ack") -> tuple[World, SimResult]:
    world = World(SimConfig(seed=SEED, tasks=TASKS, plan=PLAN, outbox=outbox))  # type: ignore[arg-type]
    return world, world.run()


def test_copies_lost_between_the_log_append_and_their_send_are_sent_on_by_a_successor() -> None:
    world, result = _run()
    assert result.ok, result.to_json()
    assert result.outbox == "ack"
    assert {topic for _, _, _, topic in result.torn} == {"synod.steps.coder", "synod.votes"}
    logged = {r.envelope.message_id for r in world.records() if r.topic == TASK_EVENTS.name}
    for t, planner, message_id, topic in result.torn:
        assert planner.startswith("planner-")
        assert message_id in logged  # the log took the record before the crash
        # Nobody sent it before the crash (it was this planner's to send), and after it
        # the copy is there: read back by a planner that had not forwarded it.
        assert _sent_after(world, topic, message_id, t) >= 1, (t, planner, topic)
    doc = result.to_json()
    assert [c["topic"] for c in doc["copies_lost"]] == [t for _, _, _, t in result.torn]


def test_a_planner_that_trusts_the_log_loses_those_copies_and_a_task_is_stuck() -> None:
    with plant("ack_trusts_the_log"):
        world, result = _run()
    assert result.torn
    for t, _, message_id, topic in result.torn:
        assert _sent_after(world, topic, message_id, t) == 0
    assert result.stuck
    assert not result.ok


def test_both_outboxes_write_the_same_records_and_replay_byte_for_byte() -> None:
    """The outbox changes when a record goes on, not what the planner writes: a
    fault-free run logs and sends the same planner messages either way (the
    consensus deadline markers depend on the timing); each mode replays exactly."""
    sent: dict[str, set[tuple[str, str]]] = {}
    for outbox in ("ack", "read-back"):
        config = SimConfig(seed=1, tasks=4, outbox=outbox)  # type: ignore[arg-type]
        world = World(config)
        result = world.run()
        assert result.ok, result.to_json()
        assert result.completed == 4
        assert result.torn == []
        assert World(config).run().digest == result.digest
        sent[outbox] = {
            (r.topic, r.envelope.message_id)
            for r in world.records()
            if r.envelope.sender.role == "planner"
        }
    assert sent["ack"] == sent["read-back"]


def test_read_back_forwards_whatever_it_reads_back_so_the_bug_does_not_touch_it() -> None:
    plain = World(SimConfig(seed=SEED, tasks=TASKS, plan=PLAN, outbox="read-back")).run()
    with plant("ack_trusts_the_log"):
        planted = World(SimConfig(seed=SEED, tasks=TASKS, plan=PLAN, outbox="read-back")).run()
    assert plain.ok, plain.to_json()
    assert planted.digest == plain.digest
    assert plain.torn == []  # nothing is sent on with its write


def test_an_outbox_the_sim_does_not_model_is_refused() -> None:
    with pytest.raises(ValueError, match="transaction"):
        SimConfig(seed=0, outbox="transaction")
