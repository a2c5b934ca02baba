"""Escalation in the task core: park on an undecided answer, resume once on the answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.taskcore import decided, fold

from synod.core.task import ANSWER, Publish, TaskConfig, TaskMachine, Tick
from synod.core.task.escalation import answer_id
from synod.wire import (
    Body,
    Decision,
    Envelope,
    PlanStep,
    Sender,
    StepCompleted,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    VoteRequested,
)
from synod.wire.messages import (
    EscalationAnswered,
    EscalationRaised,
    EscalationRequested,
    TaskCancelRequested,
    utc_now,
)

PLANNER = Sender(role="planner", instance="planner-0")
GATEWAY = Sender(role="gateway", instance="gateway-0")
STEPS = [PlanStep(step_id="r", role="coder", title="write it")]


def env(body: Body, sender: Sender = PLANNER, **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=sender, task_id="t1", **kw)


def feed(machine: TaskMachine, actions: list[Any]) -> list[Envelope[Any]]:
    out = []
    for action in actions:
        assert isinstance(action, Publish)
        e = env(action.body, message_id=action.message_id, attempt=action.attempt)
        fold(machine, e)
        out.append(e)
    return out


def decision(proposal: str, outcome: str) -> Envelope[Any]:
    return env(
        Decision(
            decision_id=f"{proposal}/d", proposal_id=proposal, ballot=1, outcome=outcome, quorum=2
        )
    )


def undecided(**labels: str) -> tuple[TaskMachine, EscalationRaised]:
    """A task whose reviewers found no quorum in both rounds: it escalates."""
    machine = TaskMachine("t1", TaskConfig(escalate=True, escalation_timeout_s=60))
    fold(machine, env(TaskSubmitted(goal="build it", plan=STEPS, labels=labels)))
    feed(machine, decided(machine))  # the plan
    feed(machine, decided(machine))  # the step
    fold(machine, env(StepCompleted(step_id="r", output="first try")))
    feed(machine, decided(machine))  # vote 1
    fold(machine, decision("t1/answer", "no_quorum"))
    feed(machine, decided(machine))  # vote 2
    fold(machine, decision("t1/answer-2", "no_quorum"))
    [raised] = decided(machine)
    assert isinstance(raised.body, EscalationRaised), raised.body
    feed(machine, [raised])
    return machine, raised.body


def answer(raised: EscalationRaised, **fields: Any) -> Envelope[Any]:
    body = EscalationAnswered(
        escalation_id=raised.escalation_id, principal="alice", answered_at=utc_now(), **fields
    )
    return env(body, GATEWAY, message_id=answer_id(raised.escalation_id))


def test_no_quorum_after_the_last_round_escalates_and_parks() -> None:
    machine, raised = undecided()
    assert raised.kind == "no_quorum"
    assert [c.candidate_id for c in raised.candidates] == [ANSWER]
    assert decided(machine) == []  # parked: nothing to do
    # The task's own deadline does not end a parked task; the escalation's timeout does.
    assert machine.ready().wake_at is not None
    machine.step(Tick(utc_now() + timedelta(seconds=30)))
    assert decided(machine) == []
    machine.step(Tick(utc_now() + timedelta(seconds=61)))
    [failed] = decided(machine)
    assert isinstance(failed.body, TaskFailed)
    assert "escalation not answered within 60 s" in failed.body.reason


def test_without_escalation_the_task_fails_as_before() -> None:
    machine = TaskMachine("t1", TaskConfig(escalate=True))
    fold(machine, env(TaskSubmitted(goal="x", plan=STEPS, labels={"escalate": "false"})))
    feed(machine, decided(machine))
    feed(machine, decided(machine))
    fold(machine, env(StepCompleted(step_id="r", output="first try")))
    feed(machine, decided(machine))
    fold(machine, decision("t1/answer", "no_quorum"))
    feed(machine, decided(machine))
    fold(machine, decision("t1/answer-2", "no_quorum"))
    [failed] = decided(machine)
    assert isinstance(failed.body, TaskFailed)


def test_an_approval_completes_the_task_once_naming_the_approver() -> None:
    machine, raised = undecided()
    fold(machine, answer(raised, action="approve", candidate_id=ANSWER))
    [done] = decided(machine)
    assert isinstance(done.body, TaskCompleted)
    assert done.body.approved_by == "alice"
    assert done.body.result == "first try"
    feed(machine, [done])
    assert decided(machine) == []


def test_a_second_answer_changes_nothing() -> None:
    machine, raised = undecided()
    first = answer(raised, action="cancel")
    assert fold(machine, first)
    second = answer(raised, action="approve", candidate_id=ANSWER)  # same derived id
    assert not fold(machine, second)
    [failed] = decided(machine)
    assert isinstance(failed.body, TaskFailed)
    assert failed.body.reason.startswith("cancelled by alice")


def test_an_approval_of_a_candidate_not_on_the_ballot_is_not_an_answer() -> None:
    machine, raised = undecided()
    fold(machine, answer(raised, action="approve", candidate_id="nope"))
    assert decided(machine) == []  # still parked


def test_reject_with_guidance_runs_one_revision_carrying_it_then_escalates_again() -> None:
    machine, raised = undecided()
    fold(machine, answer(raised, action="reject", guidance="handle the empty list"))
    [revision] = decided(machine)
    assert revision.body.prompt_variant == "revise-3"
    assert "handle the empty list" in revision.body.instructions
    feed(machine, [revision])
    assert decided(machine) == []
    fold(machine, env(StepCompleted(step_id="r", output="revised"), attempt=revision.attempt))
    [vote] = decided(machine)
    assert vote.body.proposal_id == "t1/answer-3"
    feed(machine, [vote])
    fold(machine, decision("t1/answer-3", "no_quorum"))
    [again] = decided(machine)
    assert isinstance(again.body, EscalationRaised)
    assert again.body.escalation_id != raised.escalation_id
    assert again.body.candidates[0].content == "revised"


def test_a_cancel_request_fails_the_task_without_an_escalation() -> None:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="x", plan=STEPS)))
    feed(machine, decided(machine))
    fold(machine, env(TaskCancelRequested(principal="bob", reason="not needed"), GATEWAY))
    [failed] = decided(machine)
    assert isinstance(failed.body, TaskFailed)
    assert failed.body.reason == "cancelled by bob: not needed"


def test_a_supervisors_request_escalates() -> None:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="x", plan=STEPS)))
    feed(machine, decided(machine))
    feed(machine, decided(machine))
    fold(
        machine, env(EscalationRequested(reason="looping"), Sender(role="supervisor", instance="s"))
    )
    [raised] = decided(machine)
    assert isinstance(raised.body, EscalationRaised)
    assert raised.body.kind == "supervisor"


def test_a_supervisors_request_is_one_escalation_even_if_a_vote_folds_before_it_is_logged() -> None:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="x", plan=STEPS)))
    feed(machine, decided(machine))  # the plan
    feed(machine, decided(machine))  # the step
    fold(machine, env(StepCompleted(step_id="r", output="first try")))
    [vote] = [a for a in decided(machine) if isinstance(a.body, VoteRequested)]
    fold(
        machine, env(EscalationRequested(reason="looping"), Sender(role="supervisor", instance="s"))
    )
    [raised] = decided(machine)  # in the outbox, not yet back from the log
    assert isinstance(raised.body, EscalationRaised)
    # The vote the planner logged before the request comes back first: a new round.
    fold(machine, env(vote.body, message_id=vote.message_id))
    assert machine.vote is not None
    [again] = decided(machine)
    assert again.message_id == raised.message_id
