"""A juror runs the task's tests on the answer's workspace before it judges the answer.

The workspace is given as files (what `materialise` would return); the tests
run for real, through the verifier's pytest subprocess.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

from prometheus_client import REGISTRY

from synod.llm import LLMRequest, LLMResponse
from synod.llm.sim import SimBackend
from synod.roles.reviewer.answer_tests import AnswerTests
from synod.roles.reviewer.service import Reviewer
from synod.sandbox import Verdict, verify
from synod.transport import Received
from synod.transport.dispatcher import RawRecord
from synod.transport.topics import TASK_EVENTS, VOTES, TopicSpec
from synod.wire import (
    AnswerVerified,
    Candidate,
    Envelope,
    Sender,
    Verification,
    Vote,
    VoteRequested,
)

WORKSPACE = {"calc.py": "def add(a, b):\n    return a + b\n"}
PASSING = {
    "tests/test_calc.py": "from calc import add\n\n\n"
    "def test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_zero():\n    assert add(0, 0) == 0\n"
}
FAILING = {
    "tests/test_calc.py": "from calc import add\n\n\n"
    "def test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_wrong():\n    assert add(2, 2) == 5\n"
}


class Context:
    """What a reviewer uses of its ServiceContext: its name and publishing."""

    def __init__(self, instance: str = "reviewer-0") -> None:
        self.instance = instance
        self.sender = Sender(role="reviewer", instance=instance)
        self.published: list[tuple[str, Envelope[Any]]] = []

    async def publish(self, spec: TopicSpec, envelope: Envelope[Any]) -> None:
        self.published.append((spec.name, envelope))


class CountingLLM:
    """The simulated model, counting the calls the juror makes."""

    name = "counting"

    def __init__(self) -> None:
        self.sim = SimBackend()
        self.calls = 0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls += 1
        return await self.sim.complete(request)


class Workspace:
    """`materialise` as the juror sees it: files per (task, winners), counted."""

    def __init__(self, files: dict[str, str], fail: Exception | None = None) -> None:
        self.files = files
        self.fail = fail
        self.reads: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, task_id: str, winners: dict[str, str]) -> dict[str, str]:
        self.reads.append((task_id, winners))
        if self.fail is not None:
            raise self.fail
        return dict(self.files)


def ballot(
    tests: dict[str, str] | None,
    *,
    ballot: int = 1,
    proposal: str = "t1/answer",
    winners: dict[str, str] | None = None,
    deadline_s: float = 120.0,  # generous: three pytest runs may share two busy cores
) -> Received:
    verify = None
    if tests is not None:
        verify = Verification(tests=tests, winners=winners or {"s1": "req-1"})
    body = VoteRequested(
        proposal_id=proposal,
        ballot=ballot,
        candidates=[Candidate(candidate_id="answer", content="def add(a, b): ...")],
        electorate=["reviewer-0", "reviewer-1"],
        deadline_s=deadline_s,
        verify=verify,
    )
    envelope = Envelope.new(
        body,
        sender=Sender(role="consensus", instance="consensus-0"),
        task_id="t1",
        message_id=f"{proposal}/b{ballot}",
    )
    return Received(envelope, RawRecord("synod.votes", 0, 0, b"t1", b""))


def juror(workspace: Workspace, run_tests: Any = None) -> tuple[Reviewer, Context, CountingLLM]:
    ctx, llm = Context(), CountingLLM()
    tests = AnswerTests(workspace, run_tests, timeout_s=60)
    return Reviewer(cast(Any, ctx), cast(Any, llm), tests), ctx, llm


def votes(ctx: Context) -> list[Vote]:
    return [e.body for topic, e in ctx.published if topic == VOTES.name]


def runs(ctx: Context) -> list[AnswerVerified]:
    # The juror's usage reports share the topic; the test runs are the AnswerVerified.
    return [
        e.body
        for topic, e in ctx.published
        if topic == TASK_EVENTS.name and isinstance(e.body, AnswerVerified)
    ]


def failed_runs() -> float:
    name = "synod_reviewer_test_run_duration_seconds_count"
    return REGISTRY.get_sample_value(name, {"outcome": "failed"}) or 0.0


async def test_failing_tests_are_a_reject_naming_them_without_asking_the_model() -> None:
    reviewer, ctx, llm = juror(Workspace(WORKSPACE))
    before = failed_runs()
    await reviewer.handle(ballot(FAILING))
    assert failed_runs() == before + 1
    [vote] = votes(ctx)
    assert vote.kind == "reject"
    assert vote.choice is None
    assert "test_wrong" in vote.rationale
    assert "1 passed, 1 failed" in vote.rationale
    assert llm.calls == 0
    [run] = runs(ctx)
    assert run.passed is False
    assert run.voter == "reviewer-0"
    assert run.proposal_id == "t1/answer"
    assert run.failed == ["tests.test_calc::test_wrong"]
    # The run is on the task's log before the vote, so it precedes the decision.
    assert [topic for topic, _ in ctx.published] == [TASK_EVENTS.name, VOTES.name]


async def test_passing_tests_leave_the_judgement_to_the_model() -> None:
    reviewer, ctx, llm = juror(Workspace(WORKSPACE))
    await reviewer.handle(ballot(PASSING))
    [vote] = votes(ctx)
    assert vote.kind == "choice"
    assert vote.choice == "answer"
    assert "tests pass: 2 passed, 0 failed" in vote.rationale
    assert llm.calls == 1
    [run] = runs(ctx)
    assert run.passed is True
    assert run.failed == []
    assert run.summary == "2 passed, 0 failed"


async def test_the_same_answer_is_tested_once_across_ballots_a_new_version_again() -> None:
    calls: list[dict[str, str]] = []

    def counted(files: dict[str, str], tests: dict[str, str], timeout_s: float) -> Verdict:
        calls.append(files)
        return verify(files, tests, timeout_s=timeout_s)

    workspace = Workspace(WORKSPACE)
    reviewer, ctx, _ = juror(workspace, counted)
    await reviewer.handle(ballot(FAILING, ballot=1))
    await reviewer.handle(ballot(FAILING, ballot=2))
    await reviewer.handle(ballot(FAILING, ballot=2))  # a redelivery
    assert len(calls) == 1
    assert len(workspace.reads) == 1
    assert [v.kind for v in votes(ctx)] == ["reject"] * 3
    # A revision: another attempt won a step, so another workspace version.
    await reviewer.handle(ballot(FAILING, proposal="t1/answer-2", winners={"s1": "req-2"}))
    assert len(calls) == 2
    assert workspace.reads[-1] == ("t1", {"s1": "req-2"})


async def test_tests_still_running_at_the_ballot_deadline_are_an_abstention_then_reused() -> None:
    release = threading.Event()

    def slow(files: dict[str, str], tests: dict[str, str], timeout_s: float) -> Verdict:
        release.wait(30)
        return verify(files, tests, timeout_s=timeout_s)

    reviewer, ctx, llm = juror(Workspace(WORKSPACE), slow)
    await reviewer.handle(ballot(FAILING, deadline_s=0.5))
    [vote] = votes(ctx)
    assert vote.kind == "abstain"
    assert "still running" in vote.rationale
    assert runs(ctx) == []
    assert llm.calls == 0
    # The next ballot waits for the same run rather than starting another.
    release.set()
    await reviewer.handle(ballot(FAILING, ballot=2))
    assert votes(ctx)[-1].kind == "reject"
    assert reviewer.tests.started == 1


async def test_a_workspace_that_cannot_be_read_gives_no_verdict_and_is_tried_again() -> None:
    workspace = Workspace(WORKSPACE, fail=OSError("broker unreachable"))
    reviewer, ctx, llm = juror(workspace)
    await reviewer.handle(ballot(PASSING))
    [run] = runs(ctx)
    assert run.passed is None
    assert "broker unreachable" in run.summary
    [vote] = votes(ctx)
    assert vote.kind == "choice"  # judged as without tests, and says so
    assert "tests could not be run" in vote.rationale
    assert llm.calls == 1
    workspace.fail = None
    await reviewer.handle(ballot(PASSING, ballot=2))
    assert runs(ctx)[-1].passed is True
    assert len(workspace.reads) == 2


async def test_a_ballot_without_tests_is_judged_as_before() -> None:
    workspace = Workspace(WORKSPACE)
    reviewer, ctx, llm = juror(workspace)
    await reviewer.handle(ballot(None))
    assert [v.kind for v in votes(ctx)] == ["choice"]
    assert runs(ctx) == []
    assert workspace.reads == []
    assert llm.calls == 1


async def test_jurors_run_in_parallel_each_once() -> None:
    """Three jurors on one answer: three runs, one each, all rejecting."""
    workspace = Workspace(WORKSPACE)
    jurors = [juror(workspace) for _ in range(3)]
    for i, (_, ctx, _) in enumerate(jurors):
        ctx.instance = f"reviewer-{i}"
        ctx.sender = Sender(role="reviewer", instance=ctx.instance)
    request = ballot(FAILING)
    electorate = ["reviewer-0", "reviewer-1", "reviewer-2"]
    body = request.envelope.body.model_copy(update={"electorate": electorate})
    request = Received(request.envelope.model_copy(update={"body": body}), request.record)
    await asyncio.gather(*(r.handle(request) for r, _, _ in jurors))
    assert len(workspace.reads) == 3
    assert [votes(ctx)[0].kind for _, ctx, _ in jurors] == ["reject"] * 3


async def test_a_suite_that_collects_no_test_gives_no_verdict() -> None:
    reviewer, ctx, llm = juror(Workspace(WORKSPACE))
    await reviewer.handle(ballot({"tests/test_calc.py": "import calc\n"}))
    [run] = runs(ctx)
    assert run.passed is None
    assert run.summary.startswith("no test ran: 0 passed, 0 failed")
    assert votes(ctx)[0].kind == "choice"
    assert llm.calls == 1


async def test_a_hanging_suite_is_a_failure_once_the_verifier_stops_it() -> None:
    workspace = Workspace(WORKSPACE)
    ctx, llm = Context(), CountingLLM()
    tests = AnswerTests(workspace, timeout_s=2)
    reviewer = Reviewer(cast(Any, ctx), cast(Any, llm), tests)
    hang = {"tests/test_hang.py": "import time\n\n\ndef test_hang():\n    time.sleep(60)\n"}
    await reviewer.handle(ballot(hang))
    [vote] = votes(ctx)
    assert vote.kind == "reject"
    assert "timed out after 2 s" in vote.rationale
    assert runs(ctx)[0].passed is False
