"""A task with tests: the answer ballot carries them, the outcome carries the jurors' verdict."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from tests.taskcore import decided, fold

from synod.core.plan.verdicts import verdict_of_runs
from synod.core.task import ANSWER, Publish, TaskMachine
from synod.ids import derived_id
from synod.wire import (
    AnswerVerified,
    Body,
    Decision,
    Envelope,
    PlanStep,
    Sender,
    StepCompleted,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    VoteRequested,
)

PLANNER = Sender(role="planner", instance="planner-0")
STEPS = [
    PlanStep(step_id="a", title="code a", files=["a.py"]),
    PlanStep(step_id="b", title="code b", depends_on=["a"], files=["b.py"]),
]
TESTS = {"tests/test_b.py": "import b\n\n\ndef test_b():\n    assert b.OUTPUT\n"}


def env(body: Body, **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=PLANNER, task_id="t1", **kw)


def run_to_vote(machine: TaskMachine) -> VoteRequested:
    """Fold the plan and every step's completion; return the answer ballot the planner asks."""
    for _ in range(10):
        actions = decided(machine)
        for action in actions:
            assert isinstance(action, Publish)
            fold(machine, env(action.body, message_id=action.message_id, attempt=action.attempt))
            if isinstance(action.body, StepRequested):
                done = StepCompleted(step_id=action.body.step_id, output="x")
                fold(machine, env(done, attempt=action.attempt))
            if isinstance(action.body, VoteRequested):
                return action.body
    raise AssertionError("no vote requested")


def run(passed: bool | None, voter: str, proposal: str = f"t1/{ANSWER}", **kw: Any) -> Any:
    return env(AnswerVerified(proposal_id=proposal, voter=voter, passed=passed, **kw))


def decide(machine: TaskMachine, proposal: str, outcome: str) -> None:
    fold(
        machine,
        env(
            Decision(
                decision_id=f"{proposal}/d",
                proposal_id=proposal,
                ballot=1,
                outcome=outcome,
                tally={outcome: 3.0},
                quorum=2,
            )
        ),
    )


def test_the_answer_ballot_carries_the_tests_and_the_winning_attempts() -> None:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="g", plan=STEPS, tests=TESTS)))
    vote = run_to_vote(machine)
    assert vote.verify is not None
    assert vote.verify.tests == TESTS
    # The ids of the requests whose writes make the answer's workspace.
    assert vote.verify.winners == {
        "a": derived_id("t1", "step/a/0"),
        "b": derived_id("t1", "step/b/0"),
    }


def test_without_tests_the_ballot_and_outcome_have_none() -> None:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="g", plan=STEPS)))
    vote = run_to_vote(machine)
    assert vote.verify is None
    decide(machine, vote.proposal_id, ANSWER)
    [outcome] = decided(machine)
    assert isinstance(outcome, Publish)
    assert isinstance(outcome.body, TaskCompleted)
    assert outcome.body.tests_passed is None
    assert outcome.body.tests_summary == ""


def test_passing_runs_on_the_decided_answer_complete_the_task_with_tests_passed() -> None:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="g", plan=STEPS, tests=TESTS)))
    vote = run_to_vote(machine)
    for voter in ("reviewer-0", "reviewer-1", "reviewer-2"):
        fold(machine, run(True, voter, summary="1 passed, 0 failed"))
    fold(machine, run(False, "reviewer-0", proposal="t1/other", summary="not this one"))
    decide(machine, vote.proposal_id, ANSWER)
    [outcome] = decided(machine)
    assert isinstance(outcome, Publish)
    assert isinstance(outcome.body, TaskCompleted)
    assert outcome.body.tests_passed is True
    assert outcome.body.tests_summary == "1 passed, 0 failed"


def test_failing_tests_revise_the_answer_then_fail_the_task_naming_the_test() -> None:
    machine = TaskMachine("t1")
    fold(machine, env(TaskSubmitted(goal="g", plan=STEPS, tests=TESTS)))
    vote = run_to_vote(machine)
    failing = "0 passed, 1 failed: tests.test_b::test_b"
    for voter in ("reviewer-0", "reviewer-1", "reviewer-2"):
        fold(machine, run(False, voter, summary=failing, failed=["tests.test_b::test_b"]))
    decide(machine, vote.proposal_id, "rejected")

    # Round 2: the answer's step runs again, writing its files again.
    [revision] = decided(machine)
    assert isinstance(revision, Publish)
    assert isinstance(revision.body, StepRequested)
    assert revision.body.step_id == "b"
    assert revision.body.files == ["b.py"]
    fold(machine, env(revision.body, message_id=revision.message_id, attempt=revision.attempt))
    fold(machine, env(StepCompleted(step_id="b", output="y"), attempt=revision.attempt))
    [second] = decided(machine)
    assert isinstance(second, Publish)
    assert isinstance(second.body, VoteRequested)
    fold(machine, env(second.body, message_id=second.message_id))
    assert second.body.verify is not None
    # The new version: b's files from the revision's request, a's unchanged.
    assert second.body.verify.winners["b"] == derived_id("t1", f"step/b/{revision.attempt}")
    assert second.body.verify.winners["a"] == derived_id("t1", "step/a/0")

    for voter in ("reviewer-0", "reviewer-1", "reviewer-2"):
        fold(machine, run(False, voter, proposal=second.body.proposal_id, summary=failing))
    decide(machine, second.body.proposal_id, "rejected")
    [outcome] = decided(machine)
    assert isinstance(outcome, Publish)
    assert isinstance(outcome.body, TaskFailed)
    assert outcome.body.tests_passed is False
    assert "test_b" in outcome.body.tests_summary
    assert "tests: 0 passed, 1 failed" in outcome.body.reason


def test_the_verdict_of_several_runs() -> None:
    def r(voter: str, passed: bool | None, summary: str) -> AnswerVerified:
        return AnswerVerified(proposal_id="p", voter=voter, passed=passed, summary=summary)

    assert verdict_of_runs([]) == (None, "")
    assert verdict_of_runs([r("a", True, "2 passed")]) == (True, "2 passed")
    # One failing run is a failure, whoever else passed (a flaky test is a failing one).
    mixed = [r("b", True, "2 passed"), r("a", False, "1 passed, 1 failed: t::x")]
    assert verdict_of_runs(mixed) == (False, "1 passed, 1 failed: t::x (1 of 2 runs passed)")
    # Runs that could not happen say nothing; with nothing else, no verdict.
    assert verdict_of_runs([r("a", None, "timed out")]) == (None, "not verified: timed out")
    assert verdict_of_runs([r("a", None, "x"), r("b", True, "2 passed")]) == (True, "2 passed")
    # A juror's newest run replaces its earlier one on the same proposal.
    machine = TaskMachine("t1")
    fold(machine, run(None, "reviewer-0", summary="could not run"))
    fold(machine, run(True, "reviewer-0", summary="ok", ballot=2))
    assert [v.passed for v in machine.test_runs[f"t1/{ANSWER}"].values()] == [True]


@pytest.mark.parametrize(
    ("tests", "problem"),
    [
        ({"../test_x.py": ""}, "must not contain '..'"),
        ({"/abs/test_x.py": ""}, "must be relative"),
        ({"C:test_x.py": ""}, "must be relative"),
        ({"tests\\test_x.py": ""}, "must be relative"),
        ({"test_x.txt": ""}, "must end in .py"),
        ({"a//test_x.py": ""}, "empty parts"),
        ({}, "tests is empty"),
        ({f"test_{i}.py": "" for i in range(51)}, "51 test files; at most 50"),
        ({"test_x.py": "x" * 200_001}, "200001 characters together"),
    ],
)
def test_bad_tests_are_refused_saying_what_to_fix(tests: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        TaskSubmitted(goal="g", tests=tests)
