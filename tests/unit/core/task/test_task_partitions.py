"""The task core under a partition (docs/cap.md): cp fails naming the voters it could not
reach; ap completes provisionally; an overturned decision reopens the task once."""

from __future__ import annotations

from typing import Any

from tests.taskcore import decided, fold

from synod.core.task import ANSWER, TaskConfig, TaskMachine
from synod.wire import (
    Decision,
    Envelope,
    PlanStep,
    Reconciled,
    Sender,
    StepCompleted,
    TaskSubmitted,
)

PLANNER = Sender(role="planner", instance="planner-0")
CONSENSUS = Sender(role="consensus", instance="consensus-0")


def env(body: Any, sender: Sender = PLANNER, **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=sender, task_id="t1", **kw)


def voting(mode: str, **config: Any) -> TaskMachine:
    machine = TaskMachine("t1", TaskConfig(**config))
    plan = [PlanStep(step_id="r", role="researcher", title="research")]
    fold(machine, env(TaskSubmitted(goal="g", plan=plan, partition_mode=mode)))  # type: ignore[arg-type]
    for _ in range(2):
        for action in decided(machine):
            fold(machine, env(action.body, message_id=action.message_id, attempt=action.attempt))
    fold(machine, env(StepCompleted(step_id="r", output="first try")))
    [vote] = decided(machine)
    fold(machine, env(vote.body, message_id=vote.message_id))
    return machine


def decision(outcome: str, **kw: Any) -> Envelope[Any]:
    body = Decision(
        decision_id="t1/answer/decision",
        proposal_id="t1/answer",
        ballot=1,
        outcome=outcome,
        quorum=1,
        **kw,
    )
    return env(body, CONSENSUS)


def test_cp_without_a_reachable_quorum_fails_at_once_naming_the_voters() -> None:
    machine = voting("cp")
    fold(machine, decision("no_quorum", unreachable=["reviewer-1", "reviewer-2"]))
    [failed] = decided(machine)
    assert type(failed.body).__name__ == "TaskFailed"
    assert failed.body.unreachable == ["reviewer-1", "reviewer-2"]
    assert failed.body.partition_mode == "cp"
    assert "unreachable voters: reviewer-1, reviewer-2" in failed.body.reason


def test_cp_without_a_reachable_quorum_escalates_naming_the_voters_when_escalation_is_on() -> None:
    machine = voting("cp", escalate=True)
    fold(machine, decision("no_quorum", unreachable=["reviewer-1", "reviewer-2"]))
    [raised] = decided(machine)
    assert type(raised.body).__name__ == "EscalationRaised"
    assert raised.body.kind == "partition"
    assert "unreachable voters: reviewer-1, reviewer-2" in raised.body.reason
    fold(machine, env(raised.body, message_id=raised.message_id))
    assert decided(machine) == []  # parked for a person, not failed


def test_ap_completes_provisionally_and_a_confirmation_changes_nothing() -> None:
    machine = voting("ap")
    fold(machine, decision(ANSWER, provisional=True, unreachable=["reviewer-1", "reviewer-2"]))
    [done] = decided(machine)
    assert done.body.provisional
    assert done.body.partition_mode == "ap"
    fold(machine, env(done.body, message_id=done.message_id))
    verdict = Reconciled(
        decision_id="t1/answer/decision",
        proposal_id="t1/answer",
        ballot=1,
        provisional_outcome=ANSWER,
        outcome=ANSWER,
        confirmed=True,
    )
    fold(machine, env(verdict, CONSENSUS))
    assert decided(machine) == []


def test_an_overturned_provisional_outcome_reopens_the_task_and_it_ends_anew() -> None:
    machine = voting("ap")
    fold(machine, decision(ANSWER, provisional=True))
    [done] = decided(machine)
    fold(machine, env(done.body, message_id=done.message_id))
    verdict = Reconciled(
        decision_id="t1/answer/decision",
        proposal_id="t1/answer",
        ballot=1,
        provisional_outcome=ANSWER,
        outcome="rejected",
        confirmed=False,
        tally={ANSWER: 1.0, "rejected": 2.0},
    )
    fold(machine, env(verdict, CONSENSUS))
    [revision] = decided(machine)  # reopened from the full electorate's "rejected"
    assert revision.body.step_id == "r"
    assert revision.body.prompt_variant == "revise-2"
    fold(machine, env(revision.body, message_id=revision.message_id, attempt=revision.attempt))
    fold(machine, env(StepCompleted(step_id="r", output="revised"), attempt=revision.attempt))
    [vote] = decided(machine)
    assert vote.body.proposal_id == "t1/answer-2"
    fold(machine, env(vote.body, message_id=vote.message_id))
    final = Decision(
        decision_id="t1/answer-2/decision",
        proposal_id="t1/answer-2",
        ballot=1,
        outcome=ANSWER,
        quorum=2,
    )
    fold(machine, env(final, CONSENSUS))
    [again] = decided(machine)
    assert type(again.body).__name__ == "TaskCompleted"
    assert not again.body.provisional
    assert again.message_id != done.message_id  # a new outcome, not a duplicate
    # The same verdict folded twice reopens nothing more.
    fold(machine, env(again.body, message_id=again.message_id))
    fold(machine, env(verdict, CONSENSUS))
    assert decided(machine) == []


def test_an_overturned_provisional_failure_reopens_the_task_and_it_completes() -> None:
    """An ap task whose reachable jurors rejected its last answer round fails
    provisionally; the full electorate accepts it after the heal: the task completes."""
    machine = voting("ap", max_answer_rounds=1)
    fold(machine, decision("rejected", provisional=True, unreachable=["reviewer-1"]))
    [failed] = decided(machine)
    assert type(failed.body).__name__ == "TaskFailed"
    assert failed.body.provisional
    assert failed.body.decision_id == "t1/answer/decision"
    fold(machine, env(failed.body, message_id=failed.message_id))
    assert decided(machine) == []
    verdict = Reconciled(
        decision_id="t1/answer/decision",
        proposal_id="t1/answer",
        ballot=1,
        provisional_outcome="rejected",
        outcome=ANSWER,
        confirmed=False,
        tally={ANSWER: 2.0, "rejected": 1.0},
    )
    fold(machine, env(verdict, CONSENSUS))
    [done] = decided(machine)  # reopened from the full electorate's acceptance
    assert type(done.body).__name__ == "TaskCompleted"
    assert not done.body.provisional
    assert done.body.result == "first try"
    assert done.message_id != failed.message_id
    fold(machine, env(done.body, message_id=done.message_id))
    fold(machine, env(verdict, CONSENSUS))
    assert decided(machine) == []


def test_a_failure_on_a_final_decision_is_not_provisional() -> None:
    machine = voting("cp", max_answer_rounds=1)
    fold(machine, decision("rejected"))
    [failed] = decided(machine)
    assert type(failed.body).__name__ == "TaskFailed"
    assert not failed.body.provisional
    assert failed.body.decision_id == "t1/answer/decision"
