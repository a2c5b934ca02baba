"""A project with tests on the real broker: the reviewers run them, the outcome says so.

Every service is a process (LocalRun, sim backend). Two runs of a three-step
project: one whose tests check what the sim coder writes (each module's
`solve()` returns the sim's answer for its step), which completes with
tests_passed True; one with a test that cannot pass, which every reviewer
rejects naming the test, is revised once (the answer step runs again and
rewrites its file), rejected again, and fails with tests_passed False.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.localteam import CODEC, assert_log_checks, local_team, read_topic

from synod.cli.teamrun import run_once
from synod.core.plan.dag import Plan, load_project
from synod.dev.localrun import LocalRun
from synod.ids import derived_id
from synod.llm.simcontent import expected_answer
from synod.transport.topics import TASK_EVENTS
from synod.wire import (
    AnswerVerified,
    Decision,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    VoteRequested,
)

PROJECT = {
    "project": "verify",
    "description": "Three modules; the last one combines the first two.",
    "tasks": [
        {"id": "a", "title": "module a", "files": ["a.py"]},
        {"id": "b", "title": "module b", "files": ["b.py"]},
        {"id": "c", "title": "module c", "dependencies": ["a", "b"], "files": ["c.py"]},
    ],
}
REVIEWERS = ("reviewer-0", "reviewer-1", "reviewer-2")


@pytest.fixture
async def team(kafka: Any, tmp_path: Path) -> AsyncIterator[LocalRun]:
    # Failing tests after the last revision fail the task here, not escalate it
    # (tests/e2e/test_escalation.py has that).
    env = {"SYNOD_LLM_SIM_LATENCY": "exponential:0.05", "SYNOD_ESCALATE": "false"}
    replicas = {"consensus": 1, "planner": 1, "coder": 2, "reviewer": 3}
    async with local_team(kafka.bootstrap, tmp_path, "verify", replicas, env) as run:
        yield run


def _checks(plan: Plan, task_id: str) -> str:
    """A test per module: it imports and returns the sim coder's answer for its step."""
    return "import importlib\n\n\n" + "\n\n".join(
        f"def test_{sid}():\n"
        f"    assert importlib.import_module({sid!r}).solve() == {expected_answer(task_id, sid)}\n"
        for sid in plan.ids
    )


async def _run(team: LocalRun, plan: Plan, task_id: str, tests: dict[str, str]) -> Any:
    seen: list[Any] = []
    report, log = await run_once(
        plan,
        bootstrap=team.bootstrap,
        prefix=team.prefix,
        agents=2,
        mode="synod",
        task_id=task_id,
        timeout_s=120,
        on_event=seen.append,
        tests=tests,
    )
    return report, log, seen


async def _test_runs(team: LocalRun, task_id: str, expected: int) -> list[AnswerVerified]:
    """The jurors' test runs of a task: the outcome may come before the last juror's
    run (a quorum decides), so read the log until `expected` are in, then a little more."""

    def runs_of(records: list[Any]) -> list[AnswerVerified]:
        envelopes = (CODEC.decode(r.value) for r in records)
        return [
            e.body for e in envelopes if e.task_id == task_id and isinstance(e.body, AnswerVerified)
        ]

    records = await read_topic(
        team, TASK_EVENTS, lambda rs: len(runs_of(rs)) >= expected, timeout_s=60, drain_s=1.0
    )
    return runs_of(records)


async def test_reviewers_run_the_project_s_tests_and_the_outcome_carries_the_verdict(
    team: LocalRun,
) -> None:
    plan = load_project(PROJECT)

    # Tests that check what the coder wrote: accepted, tests_passed True.
    good_id = f"verify-good-{uuid.uuid4().hex[:6]}"
    tests = {"tests/test_modules.py": _checks(plan, good_id)}
    report, log, seen = await _run(team, plan, good_id, tests)
    assert isinstance(log.outcome, TaskCompleted), log.outcome
    assert log.outcome.tests_passed is True
    assert log.outcome.tests_summary == "3 passed, 0 failed"
    assert report.tests_passed is True
    [ballot] = [e.body for e in seen if isinstance(e.body, VoteRequested)]
    assert ballot.verify is not None
    assert ballot.verify.tests == tests
    runs = await _test_runs(team, good_id, len(REVIEWERS))
    assert sorted(r.voter for r in runs) == list(REVIEWERS)  # each juror ran them once
    assert all(r.passed for r in runs)

    # One test that cannot pass: every juror rejects naming it, the answer step is
    # revised (and rewrites its file), the revision is rejected too, the task fails.
    bad_id = f"verify-bad-{uuid.uuid4().hex[:6]}"
    wrong = expected_answer(bad_id, "c") + 1
    tests = {
        "tests/test_modules.py": _checks(plan, bad_id),
        "tests/test_strict.py": "import c\n\n\n"
        f"def test_must_fail():\n    assert c.solve() == {wrong}\n",
    }
    report, log, seen = await _run(team, plan, bad_id, tests)
    assert isinstance(log.outcome, TaskFailed), log.outcome
    assert log.outcome.tests_passed is False
    assert log.outcome.tests_summary == "3 passed, 1 failed: tests.test_strict::test_must_fail"
    assert "did not accept the answer: rejected" in log.outcome.reason
    assert report.tests_passed is False

    decisions = [e.body for e in seen if isinstance(e.body, Decision)]
    assert [d.outcome for d in decisions] == ["rejected", "rejected"]
    ballots = [e.body for e in seen if isinstance(e.body, VoteRequested)]
    assert [b.proposal_id for b in ballots] == [f"{bad_id}/answer", f"{bad_id}/answer-2"]
    [revision] = [
        e for e in seen if isinstance(e.body, StepRequested) and e.body.prompt_variant == "revise-2"
    ]
    assert revision.body.step_id == "c"
    assert revision.body.files == ["c.py"]
    # Round 2 is tested on the revision's files: c's winner is the revision request.
    assert ballots[1].verify is not None
    assert ballots[1].verify.winners["c"] == revision.message_id
    assert ballots[1].verify.winners["a"] == derived_id(bad_id, "step/a/0")

    runs = await _test_runs(team, bad_id, len(REVIEWERS) * len(ballots))
    # One run per juror per answer version, and each of them saw the failure.
    assert Counter((r.proposal_id, r.voter) for r in runs) == {
        (b.proposal_id, voter): 1 for b in ballots for voter in REVIEWERS
    }
    assert all(r.passed is False for r in runs)
    assert all(r.failed == ["tests.test_strict::test_must_fail"] for r in runs)
    took = sorted(r.duration_s for r in runs)
    print(
        f"verify e2e: {len(runs)} test runs over {len(ballots)} answers of the failing run, "
        f"each {took[0]:.2f}..{took[-1]:.2f} s (materialise + pytest)"
    )
    await assert_log_checks(team)
