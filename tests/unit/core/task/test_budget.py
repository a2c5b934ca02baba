"""Budgets in the task core: grants from what is free, every usage counted, exhaustion."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.taskcore import decided, fold

from synod.core.task import Publish, TaskConfig, TaskMachine
from synod.core.task.budget import free, spent
from synod.core.task.escalation import answer_id
from synod.wire import (
    Body,
    Candidate,
    Envelope,
    PlanStep,
    Sender,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskFailed,
    TaskSubmitted,
    Usage,
)
from synod.wire.messages import (
    Allowance,
    Budget,
    EscalationAnswered,
    EscalationRaised,
    StepRetrying,
    UsageReported,
    utc_now,
)

PLANNER = Sender(role="planner", instance="planner-0")
CODER = Sender(role="coder", instance="coder-0")
STEPS = [
    PlanStep(step_id="a", role="coder", title="a"),
    PlanStep(step_id="b", role="coder", title="b"),
]


def env(body: Body, sender: Sender = PLANNER, **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=sender, task_id="t1", **kw)


def used(n: int) -> Usage:
    return Usage(model="m", calls=1, input_tokens=n // 2, output_tokens=n - n // 2)


def started(budget: Budget) -> tuple[TaskMachine, list[Envelope[Any]]]:
    machine = TaskMachine("t1", TaskConfig(escalate=True))
    fold(machine, env(TaskSubmitted(goal="x", plan=STEPS, budget=budget)))
    [plan] = decided(machine)
    fold(machine, env(plan.body, message_id=plan.message_id))
    requests = []
    for action in decided(machine):
        assert isinstance(action, Publish)
        e = env(action.body, message_id=action.message_id, attempt=action.attempt)
        fold(machine, e)
        requests.append(e)
    return machine, requests


def test_each_request_gets_half_of_what_is_free() -> None:
    machine, requests = started(Budget(max_tokens=10_000))
    grants = [r.body.allowance.tokens for r in requests]
    assert grants == [5_000, 2_500]
    room = free(machine)
    assert room is not None
    assert room.tokens == 2_500


def test_every_usage_on_the_log_counts_and_ended_attempts_free_their_rest() -> None:
    machine, (a, b) = started(Budget(max_tokens=10_000))
    fold(
        machine,
        env(
            StepRetrying(step_id="a", retry=1, due_at=utc_now(), usage=used(100)),
            CODER,
            causes=[a.message_id],
        ),
    )
    fold(machine, env(StepCompleted(step_id="a", usage=used(300)), CODER, causes=[a.message_id]))
    # A hedge loser's completion and a cancelled call count too.
    fold(machine, env(StepCompleted(step_id="a", usage=used(50)), CODER, causes=["other"]))
    fold(
        machine, env(UsageReported(request_id=b.message_id, what="cancelled", usage=used(7)), CODER)
    )
    total = spent(machine)
    assert total.input_tokens + total.output_tokens == 457
    assert total.calls == 4
    room = free(machine)
    assert room is not None
    assert room.tokens == 10_000 - 457


def test_a_refused_call_fails_the_task_when_the_budget_says_fail() -> None:
    machine, (a, b) = started(Budget(max_tokens=5_000))
    refused = StepFailed(step_id="a", error_class="budget", reason="budget_exhausted", error="x")
    fold(machine, env(refused, CODER, causes=[a.message_id]))
    assert decided(machine) == []  # b is still out: it may leave room
    fold(machine, env(StepCompleted(step_id="b", usage=used(1_200)), CODER, causes=[b.message_id]))
    [failed] = decided(machine)  # 3800 free: no grant bigger than the 2500 refused
    assert isinstance(failed.body, TaskFailed)
    assert failed.body.error_class == "budget"
    assert "the budget is spent" in failed.body.reason


def test_exhausted_with_escalate_parks_and_a_raise_resumes() -> None:
    machine, (a, b) = started(Budget(max_tokens=6_000, on_exhausted="escalate"))
    assert [r.body.allowance.tokens for r in (a, b)] == [3_000, 1_500]
    fold(machine, env(StepCompleted(step_id="a", usage=used(700)), CODER, causes=[a.message_id]))
    refused = StepFailed(step_id="b", error_class="budget", reason="budget_exhausted", error="x")
    fold(machine, env(refused, CODER, causes=[b.message_id]))
    # With a's rest given back, a bigger grant than the one refused is free: once more.
    [again] = decided(machine)
    assert isinstance(again.body, StepRequested)
    assert again.body.allowance is not None
    assert again.body.allowance.tokens == (6_000 - 700) // 2
    retried = env(again.body, message_id=again.message_id, attempt=again.attempt)
    fold(machine, retried)
    fold(machine, env(refused, CODER, causes=[retried.message_id], attempt=again.attempt))
    # Nothing bigger is free now: the budget is spent.
    [raised] = decided(machine)
    assert isinstance(raised.body, EscalationRaised)
    assert raised.body.kind == "budget"
    fold(machine, env(raised.body, message_id=raised.message_id))
    assert decided(machine) == []
    answer = EscalationAnswered(
        escalation_id=raised.body.escalation_id,
        action="raise_budget",
        principal="alice",
        answered_at=utc_now(),
        budget=Budget(max_tokens=10_000, on_exhausted="escalate"),
    )
    fold(
        machine,
        env(
            answer,
            Sender(role="gateway", instance="g"),
            message_id=answer_id(raised.body.escalation_id),
            created_at=utc_now() + timedelta(seconds=5),
        ),
    )
    [retry] = decided(machine)
    assert isinstance(retry.body, StepRequested)
    assert retry.body.step_id == "b"
    assert retry.body.allowance is not None
    assert retry.body.allowance.tokens == (10_000 - 700) // 2


def test_a_task_without_a_budget_grants_nothing() -> None:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="x", plan=STEPS)))
    [plan] = decided(machine)
    fold(machine, env(plan.body, message_id=plan.message_id))
    assert all(a.body.allowance is None for a in decided(machine))


def test_a_budget_too_small_for_any_call_fails_at_once() -> None:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="x", plan=STEPS, budget=Budget(max_tokens=1_500))))
    [plan] = decided(machine)
    fold(machine, env(plan.body, message_id=plan.message_id))
    [failed] = decided(machine)  # 750 tokens is no grant: nothing could be called
    assert isinstance(failed.body, TaskFailed)
    assert failed.body.error_class == "budget"


def test_a_jurors_grant_ends_when_it_reported_in_the_deciding_ballot() -> None:
    from synod.wire import Decision, VoteRequested

    machine, _ = started(Budget(max_tokens=10_000))
    ask = VoteRequested(
        proposal_id="t1/answer",
        candidates=[Candidate(candidate_id="answer", content="x")],
        electorate=["reviewer-0", "reviewer-1"],
        allowance=Allowance(tokens=1_000),
    )
    fold(machine, env(ask))
    before = free(machine)
    assert before is not None
    report = UsageReported(
        request_id="t1/answer", what="juror ballot 1", voter="reviewer-0", usage=used(100)
    )
    fold(machine, env(report, Sender(role="reviewer", instance="reviewer-0")))
    decided_ = Decision(
        decision_id="d", proposal_id="t1/answer", ballot=1, outcome="answer", quorum=1
    )
    fold(machine, env(decided_, Sender(role="consensus", instance="consensus-0")))
    after = free(machine)
    assert after is not None
    assert before.tokens is not None
    # reviewer-0 spent 100 and is done (900 back); reviewer-1 may still call: held.
    assert after.tokens == before.tokens + 900
