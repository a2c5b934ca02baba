"""The task core with a blackboard: `strong` waits for decided facts, `eventual` reconciles."""

from __future__ import annotations

from typing import Any

from tests.taskcore import decided, fold

from synod.core.blackboard import RECONCILE_STEP, parse
from synod.core.task import ANSWER, Publish, TaskMachine
from synod.core.task.knowledge import stale_steps
from synod.wire import (
    Body,
    Decision,
    Envelope,
    PlanStep,
    Sender,
    StepCompleted,
    StepRequested,
    TaskCompleted,
    TaskSubmitted,
    VoteRequested,
)
from synod.wire.messages import FactPublished

PLANNER = Sender(role="planner", instance="planner-0")
RESEARCHER = Sender(role="researcher", instance="researcher-0")
# Two researchers that may run at once; the coder needs only the first.
STEPS = [
    PlanStep(step_id="r1", role="researcher", title="old survey"),
    PlanStep(step_id="r2", role="researcher", title="new survey"),
    PlanStep(step_id="c", role="coder", title="code", depends_on=["r1"]),
]


def env(body: Body, sender: Sender = PLANNER, **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=sender, task_id="t1", **kw)


def start(consistency: str) -> TaskMachine:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="g", plan=STEPS, consistency=consistency)))  # type: ignore[arg-type]
    feed(machine, decided(machine))
    return machine


def feed(machine: TaskMachine, actions: list[Any]) -> None:
    for action in actions:
        assert isinstance(action, Publish)
        fold(machine, env(action.body, message_id=action.message_id, attempt=action.attempt))


def requests(machine: TaskMachine) -> dict[str, StepRequested]:
    out = {}
    for a in decided(machine):
        if isinstance(a, Publish) and isinstance(a.body, StepRequested):
            out[a.body.step_id] = a.body
    return out


def publish_fact(
    machine: TaskMachine, step: str, fid: str, value: str, conf: float, observed: list[str]
) -> None:
    body = FactPublished(
        fact_id=fid, step_id=step, key="approach", value=value, confidence=conf, observed=observed
    )
    fold(machine, env(body, RESEARCHER, message_id=fid))


def complete(machine: TaskMachine, step: str, attempt: int = 0) -> None:
    body = StepCompleted(step_id=step, output=f"output of {step}")
    fold(machine, env(body, RESEARCHER, message_id=f"done-{step}-{attempt}", attempt=attempt))


def vote_and_decide(machine: TaskMachine) -> VoteRequested:
    (vote,) = [a for a in decided(machine) if isinstance(a.body, VoteRequested)]
    feed(machine, [vote])
    decision = Decision(
        decision_id="d1", proposal_id=vote.body.proposal_id, ballot=1, outcome=ANSWER, quorum=2
    )
    fold(machine, env(decision))
    return vote.body


def outcome(machine: TaskMachine) -> TaskCompleted:
    (done,) = [a for a in decided(machine) if isinstance(a.body, TaskCompleted)]
    return done.body


def test_strong_serialises_researchers_and_hands_only_decided_facts() -> None:
    m = start("strong")
    assert sorted(requests(m)) == ["r1"]  # r2 waits: r1's facts come first in the one order
    feed(m, decided(m))
    publish_fact(m, "r1", "f1", "A-old", 0.4, [])
    assert sorted(requests(m)) == []  # f1 is published but not decided: nothing new yet
    complete(m, "r1")
    (r2,) = requests(m).values()
    assert r2.step_id == "r2"
    assert r2.facts == ["f1"]
    assert [f.fact_id for f in parse(r2.inputs["blackboard"])] == ["f1"]
    feed(m, decided(m))
    publish_fact(m, "r2", "f2", "A", 0.9, ["f1"])  # r2 read f1: its fact replaces it
    assert sorted(requests(m)) == []  # the coder waits for r2 too, though it needs only r1
    complete(m, "r2")
    (c,) = requests(m).values()
    assert c.facts == ["f2"]
    feed(m, decided(m))
    complete(m, "c")
    assert stale_steps(m) == []
    vote = vote_and_decide(m)
    assert "## Blackboard (strong)\n- approach = A" in vote.candidates[0].content
    done = outcome(m)
    assert done.consistency == "strong"
    assert done.blackboard == {"approach": "A"}


def test_eventual_reads_the_board_as_it_is_then_reconciles_before_the_vote() -> None:
    m = start("eventual")
    assert sorted(requests(m)) == ["r1", "r2"]  # concurrent writers
    feed(m, decided(m))
    publish_fact(m, "r1", "f1", "A-old", 0.4, [])
    complete(m, "r1")
    (c,) = requests(m).values()
    assert c.facts == ["f1"]  # the board as it is: r2 has not written yet
    feed(m, decided(m))
    publish_fact(m, "r2", "f2", "A", 0.9, [])  # r2 never saw f1: a conflict
    complete(m, "r2")
    complete(m, "c")
    assert m.board.conflicts().keys() == {"approach"}
    assert stale_steps(m) == ["c", "r1", "r2"]  # each worked without a concurrent fact
    (rec,) = requests(m).values()
    assert rec.step_id == RECONCILE_STEP
    assert rec.role == "researcher"
    assert rec.facts == ["f1", "f2"]
    assert "approach" in rec.instructions
    assert not [a for a in decided(m) if isinstance(a.body, VoteRequested)]  # waits for it
    feed(m, decided(m))
    publish_fact(m, RECONCILE_STEP, "f3", "A", 0.9, ["f1", "f2"])
    complete(m, RECONCILE_STEP)
    assert m.board.conflicts() == {}
    vote = vote_and_decide(m)
    content = vote.candidates[0].content
    assert f"## Blackboard (eventual, reconciled by {RECONCILE_STEP})" in content
    assert "- approach = A\n" in content + "\n"
    done = outcome(m)
    assert done.consistency == "eventual"
    assert done.blackboard == {"approach": "A"}


def test_eventual_without_conflict_or_stale_read_needs_no_reconcile() -> None:
    m = TaskMachine("t1")
    plan = [STEPS[0], STEPS[2]]
    fold(m, env(TaskSubmitted(goal="g", plan=plan, consistency="eventual")))
    feed(m, decided(m))
    feed(m, decided(m))
    publish_fact(m, "r1", "f1", "A", 0.9, [])
    complete(m, "r1")
    feed(m, decided(m))
    complete(m, "c")
    assert [type(a.body).__name__ for a in decided(m)] == ["VoteRequested"]


def test_a_failing_reconcile_step_is_retried_then_fails_the_task() -> None:
    m = start("eventual")
    feed(m, decided(m))
    publish_fact(m, "r1", "f1", "A-old", 0.4, [])
    publish_fact(m, "r2", "f2", "A", 0.9, [])
    complete(m, "r1")
    complete(m, "r2")
    feed(m, decided(m))
    complete(m, "c")
    from synod.wire import StepFailed

    for attempt in range(3):
        (rec,) = decided(m)
        assert rec.body.step_id == RECONCILE_STEP
        assert rec.attempt == attempt
        feed(m, [rec])
        failed = StepFailed(step_id=RECONCILE_STEP, error_class="transient", error="boom")
        fold(m, env(failed, RESEARCHER, message_id=f"fail-{attempt}", attempt=attempt))
    (end,) = decided(m)
    assert type(end.body).__name__ == "TaskFailed"
    assert RECONCILE_STEP in end.body.reason
    assert end.body.consistency == "eventual"
