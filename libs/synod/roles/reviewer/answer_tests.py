"""A reviewer's runs of a task's tests on the workspace behind an answer.

Before a juror judges an answer whose ballot carries a `Verification`, it
materialises the task's workspace at the answer's version (the winning attempt
of every step) and runs the tests there (`synod.sandbox`, in a thread:
pytest takes seconds and the juror's loop has other ballots to serve).

One run per (task, answer version) per reviewer instance: the consensus
service asks a juror again on every ballot and round of a proposal, and
re-running pytest for the same files would only repeat the verdict. A run
still going when a ballot ends is not thrown away; the next request for the
same answer waits for it instead of starting another.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from synod.roles.metrics import TEST_RUNS
from synod.sandbox import Verdict, verify
from synod.wire import VoteRequested

log = logging.getLogger("synod.agents")

# (task id, winners: step -> request id) -> the files of that workspace version.
ReadWorkspace = Callable[[str, dict[str, str]], Awaitable[dict[str, str]]]
# (files, tests, timeout_s) -> the verdict; blocking (it runs in a thread).
RunTests = Callable[[dict[str, str], dict[str, str], float], Verdict]


class VerifySettings(BaseSettings):
    """How a reviewer runs a task's tests (SYNOD_*)."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_", extra="ignore")

    verify_timeout_s: float = Field(
        default=120.0, gt=0, description="wall-clock bound on one run of a task's tests"
    )


@dataclass(frozen=True)
class SuiteRun:
    """What one run of the tests found. `passed` None: the tests could not be run."""

    passed: bool | None
    summary: str
    failed: tuple[str, ...] = ()
    duration_s: float = 0.0


def answer_version(task_id: str, request: VoteRequested) -> str:
    """What identifies the workspace an answer ballot asks about: the same answer
    (candidates, winning attempts, tests) always gives the same key."""
    assert request.verify is not None
    material = {
        "task": task_id,
        "winners": request.verify.winners,
        "tests": request.verify.tests,
        "candidates": [[c.candidate_id, c.content] for c in request.candidates],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def run_of(verdict: Verdict, duration_s: float) -> SuiteRun:
    if verdict.returncode is not None and not verdict.reported:
        # pytest wrote no report: it did not get to run the tests (not installed,
        # killed by a limit). That says nothing about the answer.
        return SuiteRun(None, verdict.summary, (), duration_s)
    if verdict.reported and not verdict.failed and not verdict.passed_count:
        # Nothing collected (all skipped, or no test functions): the suite's
        # problem, not the answer's.
        return SuiteRun(None, f"no test ran: {verdict.summary}", (), duration_s)
    return SuiteRun(verdict.passed, verdict.summary, verdict.failed, duration_s)


class AnswerTests:
    def __init__(
        self,
        read_workspace: ReadWorkspace,
        run_tests: RunTests | None = None,
        *,
        timeout_s: float | None = None,
        capacity: int = 256,
    ) -> None:
        self.read_workspace = read_workspace
        self.run_tests: RunTests = run_tests or (lambda f, t, s: verify(f, t, timeout_s=s))
        self.timeout_s = timeout_s if timeout_s is not None else VerifySettings().verify_timeout_s
        self.capacity = capacity
        self.runs: OrderedDict[str, asyncio.Task[SuiteRun]] = OrderedDict()
        self.started = 0  # runs begun by this instance (each materialises and runs pytest once)

    async def check(self, task_id: str, request: VoteRequested, wait_s: float) -> SuiteRun | None:
        """The run for this answer, waiting at most `wait_s`; None if it is still going."""
        key = answer_version(task_id, request)
        run = self.runs.get(key)
        if run is None:
            run = asyncio.create_task(self._run(task_id, request))
            self.runs[key] = run
            self.started += 1
            # Forget the oldest finished runs; one in flight may have a juror waiting.
            surplus = len(self.runs) - self.capacity
            for old in [k for k, r in self.runs.items() if r.done()][: max(surplus, 0)]:
                del self.runs[old]
        self.runs.move_to_end(key)
        done, _ = await asyncio.wait({run}, timeout=max(wait_s, 0.0))
        if not done:
            return None
        result = run.result()
        if result.passed is None:
            self.runs.pop(key, None)  # no verdict: the next ballot tries again
        return result

    async def _run(self, task_id: str, request: VoteRequested) -> SuiteRun:
        assert request.verify is not None
        started = time.monotonic()
        try:
            files = await self.read_workspace(task_id, dict(request.verify.winners))
            read = time.monotonic()
            verdict = await asyncio.to_thread(
                self.run_tests, files, dict(request.verify.tests), self.timeout_s
            )
        except Exception as exc:  # a juror must vote, whatever broke here
            return SuiteRun(None, f"could not run the tests: {exc!r}"[:1_000])
        done = time.monotonic()
        run = run_of(verdict, round(done - started, 3))
        outcome = "no_verdict" if run.passed is None else ("passed" if run.passed else "failed")
        TEST_RUNS.labels(outcome).observe(done - started)
        log.info(
            "tests run",
            extra={
                "task_id": task_id,
                "proposal_id": request.proposal_id,
                "passed": run.passed,
                "materialise_s": round(read - started, 3),
                "pytest_s": round(done - read, 3),
            },
        )
        return run
