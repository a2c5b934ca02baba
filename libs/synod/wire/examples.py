"""One realistic example of every message type.

Used by the docs, the demo, the codec tests and the size table in docs/wire.md;
realistic sizes matter there, so the examples carry typical content.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from synod.wire.messages import (
    AnswerVerified,
    BallotDeadline,
    Body,
    Candidate,
    DeadLetter,
    Decision,
    Envelope,
    EscalationAnswered,
    EscalationRaised,
    EscalationRequested,
    FactPublished,
    FileWritten,
    Header,
    Heartbeat,
    LeaseGranted,
    PlanProposed,
    PlanStep,
    QuarantineNotice,
    Reachability,
    Reconciled,
    Sender,
    StepCancelled,
    StepClaimed,
    StepCompleted,
    StepFailed,
    StepReassigned,
    StepRequested,
    StepRetrying,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    TraceContext,
    Usage,
    UsageReported,
    Vote,
    VoteRequested,
)

_T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
_TASK = "t-7f3a9c"
_TRACE = TraceContext(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
_USAGE = Usage(
    model="claude-sonnet-4-5", calls=1, input_tokens=812, output_tokens=344, cost_usd=0.0076
)
_STEPS = [
    PlanStep(step_id="s1", role="researcher", title="Survey FizzBuzz variants"),
    PlanStep(
        step_id="s2",
        role="coder",
        title="Implement fizzbuzz(n)",
        depends_on=["s1"],
        files=["fizzbuzz.py"],
        priority=1,
    ),
    PlanStep(
        step_id="s3",
        role="coder",
        title="Write tests",
        depends_on=["s2"],
        files=["test_fizzbuzz.py"],
        priority=2,
    ),
]
_CODE = (
    "def fizzbuzz(n: int) -> str:\n"
    '    """Return Fizz, Buzz, FizzBuzz or the number itself."""\n'
    "    if n % 15 == 0:\n        return 'FizzBuzz'\n"
    "    if n % 3 == 0:\n        return 'Fizz'\n"
    "    if n % 5 == 0:\n        return 'Buzz'\n"
    "    return str(n)\n"
)


def example_bodies() -> list[Body]:
    return [
        TaskSubmitted(goal="Write a fizzbuzz(n) function in Python with tests", reviewers=3),
        PlanProposed(plan_id="p1", steps=_STEPS, rationale="Research, then code, then test."),
        StepRequested(
            step_id="s2",
            plan_id="p1",
            role="coder",
            title="Implement fizzbuzz(n)",
            instructions="Write fizzbuzz.py with a typed fizzbuzz(n) function.",
            inputs={"s1": "Classic rules: multiples of 3 -> Fizz, 5 -> Buzz, 15 -> FizzBuzz."},
            deadline_s=120.0,
            model="claude-sonnet-4-5",
            temperature=0.2,
        ),
        StepCompleted(step_id="s2", output=_CODE, usage=_USAGE, duration_s=3.2),
        StepFailed(
            step_id="s2",
            error_class="transient",
            error="provider overloaded (529)",
            usage=Usage(model="claude-sonnet-4-5", calls=1),
            duration_s=0.4,
        ),
        StepRetrying(
            step_id="s2",
            retry=1,
            due_at=_T0,
            reason="circuit_open",
            error="circuit open for every model in the chain: anthropic/claude-sonnet-4-5",
            deadline_s=120.0,
        ),
        VoteRequested(
            proposal_id=f"{_TASK}/answer",
            candidates=[Candidate(candidate_id="c1", content=_CODE, author="coder-0")],
            electorate=["reviewer-0", "reviewer-1", "reviewer-2"],
            deadline_s=60.0,
        ),
        Vote(
            proposal_id=f"{_TASK}/answer",
            voter="reviewer-1",
            choice="c1",
            confidence=0.9,
            rationale="Correct for all residues mod 15; typed; documented.",
        ),
        Decision(
            decision_id=f"{_TASK}/answer/decision",
            proposal_id=f"{_TASK}/answer",
            ballot=1,
            outcome="c1",
            tally={"c1": 3.0},
            quorum=2,
            votes_counted=3,
        ),
        BallotDeadline(
            proposal_id=f"{_TASK}/answer", ballot=1, reachable=["reviewer-0", "reviewer-1"]
        ),
        Reconciled(
            decision_id=f"{_TASK}/answer/decision",
            proposal_id=f"{_TASK}/answer",
            ballot=1,
            provisional_outcome="c1",
            outcome="rejected",
            confirmed=False,
            tally={"c1": 1.0, "rejected": 2.0},
            votes_counted=3,
        ),
        Reachability(
            observer="supervisor-0",
            reachable=["planner-0", "reviewer-0"],
            suspected=["reviewer-1"],
        ),
        Heartbeat(
            instance="researcher-1",
            role="researcher",
            seq=42,
            in_flight=[f"{_TASK}/s1"],
            breakers={"anthropic/claude-sonnet-4-5": "closed"},
            last_progress_at=_T0,
            assigned={"synod.steps.researcher": [0, 3, 7]},
        ),
        StepReassigned(
            step_id="s2",
            after_attempt=1,
            model="claude-haiku-4-5",
            temperature=0.7,
            prompt_variant="rephrase",
            reason="loop",
        ),
        StepClaimed(step_id="s3", agent=1, blocked_on=["s2"]),
        StepCancelled(
            step_id="s2",
            request_ids=["5d2c0f0e9b7a4f4e8c1d2a3b4c5d6e7f"],
            attempts=[0],
            reason="hedge_lost",
        ),
        FileWritten(
            path="add.py",
            content="def add(a, b):\n    return a + b\n",
            writer="coder-0",
            step_id="s2",
            write_id="w-1",
            base_version={"w-0": 1},
            lease_token=2,
        ),
        LeaseGranted(path="add.py", step_id="s2", token=2, base_version={"w-0": 1}),
        QuarantineNotice(
            instance="reviewer-2",
            role="reviewer",
            until=_T0,
            reason="wrong_votes",
            strikes=3,
        ),
        AnswerVerified(
            proposal_id=f"{_TASK}/answer",
            voter="reviewer-1",
            passed=False,
            summary="4 passed, 1 failed: test_fizzbuzz.py::test_fifteen",
            failed=["test_fizzbuzz.py::test_fifteen"],
            duration_s=1.4,
        ),
        TaskCompleted(
            result=_CODE,
            plan_id="p1",
            decision_id=f"{_TASK}/answer/decision",
            steps_completed=3,
            usage=_USAGE,
            duration_s=14.8,
        ),
        TaskFailed(reason="no quorum after 3 ballots", error_class="permanent", failed_step="s3"),
        UsageReported(
            request_id="5d2c0f0e9b7a4f4e8c1d2a3b4c5d6e7f",
            what="juror",
            voter="reviewer-1",
            usage=_USAGE,
        ),
        EscalationRequested(reason="the coder keeps looping; a person should look"),
        EscalationRaised(
            escalation_id=f"{_TASK}/escalation/1",
            kind="no_quorum",
            reason="the reviewers did not reach a quorum in 2 rounds",
            proposal_id=f"{_TASK}/answer-2",
            candidates=[Candidate(candidate_id="answer", content=_CODE, author="s3")],
            timeout_s=3600.0,
        ),
        EscalationAnswered(
            escalation_id=f"{_TASK}/escalation/1",
            action="approve",
            principal="alice",
            answered_at=_T0,
            candidate_id="answer",
        ),
        TaskCancelRequested(principal="alice", reason="no longer needed"),
        DeadLetter(
            source_topic="synod.tasks",
            partition=2,
            offset=1207,
            key=_TASK.encode(),
            value=b'{"task_id": "t-7f3a9c", "goal": ',
            headers=[Header(key="content-type", value=b"application/json")],
            reason="undecodable",
            message="neither Avro (no C3 01 marker) nor JSON: Expecting value",
            first_failed_at=_T0,
        ),
        FactPublished(
            fact_id="f-3c1d",
            step_id="s1",
            key="fizzbuzz.order",
            value="check 15 before 3 and 5",
            confidence=0.9,
            author="researcher-0",
        ),
    ]


def example_envelope(body: Body) -> Envelope[Any]:
    task_id = None if not type(body).TASK_SCOPED else _TASK
    return Envelope.new(
        body,
        sender=Sender(role="planner", instance="planner-0"),
        task_id=task_id,
        message_id="0b7c5a1e9d2f4c3ab8e6d4f2a1c3e5b7",
        causes=["9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"],
        vclock={"planner-0": 4, "coder-0": 2},
        lamport=9,
        created_at=_T0,
        trace=_TRACE,
    )


def example_envelopes() -> list[Envelope[Any]]:
    return [example_envelope(b) for b in example_bodies()]
