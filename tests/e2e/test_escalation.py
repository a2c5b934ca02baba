"""Escalation end to end: every service a process, the real broker, answers over HTTP.

One reviewer process for electorates of three: no ballot reaches a quorum and
two voters never answer, so each (`cp`) task is put to a person as a
`partition` escalation naming them, and parks. The planner and
the consensus service are SIGKILLed while they wait and started again; then:

- an approval over HTTP completes the first task, once, with the approver on
  the log (and a second answer is refused, saying who answered first);
- a rejection with guidance, given in the console's approvals view (in a real
  Chromium), runs one revision round whose prompt (as the simulated model
  recorded it) carries the guidance; it escalates again and a
  cancel ends it with TaskFailed(cancelled);
- a cancel through `/v1/tasks/{id}/cancel` ends the third.

A task with a small token budget, under the flaky fault profile, stops at its
limit: its usage on the log is within the budget, and its outcome's usage is
the sum of every call's usage on the log. That the faults really happen is
arranged, not hoped for: the simulated model draws its faults from (seed,
task, step, attempt, role), so the test picks the task id whose flaky draws
give one step a 429 (a retry through the retry topics) and no other fault,
and one step is a straggler on its first attempt (SYNOD_LLM_SIM_SLOW_STEPS),
so it is hedged; the log must show the retry, the hedge, and the usage of
the retried run and of the hedge's loser in the sum.

`synod check` (answered once, resumed once, usage within budget) is clean.
The two tests share one team (module scope): the team's start-up is most of
an e2e test's time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.localteam import CODEC, assert_log_checks, local_team, outcomes_by_task, read_topic

from synod.dev.localrun import LocalRun
from synod.ids import derived_id
from synod.llm import LLMRequest
from synod.llm.faults import load_profile
from synod.llm.sim import SimBackend
from synod.transport.topics import RESULTS, TASK_EVENTS
from synod.wire import StepRequested, TaskCompleted, TaskFailed
from synod.wire.messages import EscalationAnswered, StepCancelled, UsageReported

pytestmark = pytest.mark.timeout(400)
CHROMIUM = os.environ.get("SYNOD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
GUIDANCE = "Name the function solve and handle an empty input"
STRAGGLER = "straggler"


@pytest.fixture(scope="module")
async def team(
    kafka: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LocalRun, Path]]:
    tmp_path = tmp_path_factory.mktemp("escalation")
    prompts = tmp_path / "prompts.jsonl"
    env = {
        "SYNOD_LLM_FAULT_PROFILE": "flaky",
        "SYNOD_LLM_SIM_LATENCY": "exponential:0.1",
        "SYNOD_STEP_DEADLINE_S": "5",
        "SYNOD_RETRY_DELAYS_S": "0.5,1,2",
        "SYNOD_LLM_SIM_PROMPT_LOG": str(prompts),
        "SYNOD_VOTE_DEADLINE_S": "2",
        # A SIGKILLed member's partitions move once its session ends: the
        # broker's least (group.min.session.timeout.ms), not the default 10 s.
        "SYNOD_SESSION_TIMEOUT_MS": "6000",
        "SYNOD_API_TOKENS": "alice=tok-alice,bob=tok-bob",
        "SYNOD_ESCALATION_TIMEOUT_S": "600",
        # The arranged budget task's straggler: its first attempt is slow, so hedged.
        "SYNOD_LLM_SIM_SLOW_STEPS": f"{STRAGGLER}=30",
    }
    replicas = {
        "gateway": 1,
        "consensus": 1,
        "planner": 1,
        "researcher": 1,
        "coder": 1,
        "reviewer": 1,
    }
    async with local_team(kafka.bootstrap, tmp_path, "escal", replicas, env) as run:
        yield run, prompts


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as response:
        return response.status, await response.json()


async def _open_escalation(
    session: aiohttp.ClientSession, base: str, task_id: str, not_id: str = ""
) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while True:
        status, doc = await _json(
            session, "GET", f"{base}/v1/escalations?task_id={task_id}", headers=ALICE
        )
        assert status == 200, doc
        found = [e for e in doc["escalations"] if e["escalation_id"] != not_id]
        if found:
            return dict(found[0])
        assert time.monotonic() < deadline, f"no escalation for {task_id}"
        await asyncio.sleep(0.5)


def _sigkill_and_restart(run: LocalRun, *instances: str) -> None:
    for child in run.children:
        if child.instance in instances:
            assert child.proc is not None
            os.kill(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
    for child in run.children:
        if child.instance in instances:
            child.start()


async def _answer(
    session: aiohttp.ClientSession, base: str, eid: str, doc: Any, who: dict[str, str]
) -> tuple[int, Any]:
    status, body = await _json(
        session, "POST", f"{base}/v1/escalations/{eid}/answer", json=doc, headers=who
    )
    return int(status), body


async def _reject_in_the_console(base: str, eid: str) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once, before the browser
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            expect = playwright_api.expect
            expect.set_options(timeout=60_000)
            await page.goto(f"{base}/console/")
            await page.fill("#token", "tok-bob")
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Tasks")
            await page.goto(f"{base}/console/#/approvals")
            card = page.locator(f'article.escalation[data-escalation="{eid}"]')
            await expect(card).to_have_attribute("data-state", "open")
            await expect(card.locator(".candidate")).to_have_count(1)
            await card.locator("textarea").fill(GUIDANCE)
            await card.locator('button[data-action="reject"]').click()
            answered = page.locator(
                f'article.escalation[data-escalation="{eid}"][data-state="answered"]'
            )
            await expect(answered).to_contain_text("reject by bob")
            assert not errors, errors
        finally:
            await browser.close()


async def test_undecided_tasks_park_survive_kills_and_resume_once_as_answered(
    team: tuple[LocalRun, Path],
) -> None:
    run, prompts = team
    base = run.gateway_url
    tag = uuid.uuid4().hex[:6]
    approve_id, reject_id, cancel_id = (f"{n}-{tag}" for n in ("approve", "reject", "cancel"))
    async with aiohttp.ClientSession() as session:
        for task_id in (approve_id, reject_id, cancel_id):
            status, doc = await _json(
                session,
                "POST",
                f"{base}/v1/tasks",
                json={"task_id": task_id, "goal": f"Write a function for {task_id}"},
                headers=ALICE,
            )
            assert status == 202, doc
        first = await _open_escalation(session, base, approve_id)
        # Voters that never answer are, to consensus, unreachable (issue 16's cp rule).
        assert first["kind"] == "partition", first
        assert "reviewer-1" in first["reason"], first
        assert "reviewer-2" in first["reason"], first
        assert first["state"] == "open"
        rejecting = await _open_escalation(session, base, reject_id)
        await _open_escalation(session, base, cancel_id)

        # Every task is parked; the planner and the consensus service die and come back.
        _sigkill_and_restart(run, "planner-0", "consensus-0")

        # A candidate not on the ballot is refused, saying what to send.
        status, doc = await _answer(
            session,
            base,
            first["escalation_id"],
            {"action": "approve", "candidate_id": "nope"},
            ALICE,
        )
        assert status == 400
        assert "send candidate_id as one of: answer" in doc["error"]["message"]

        status, doc = await _answer(
            session,
            base,
            first["escalation_id"],
            {"action": "approve", "candidate_id": "answer"},
            ALICE,
        )
        assert status in (200, 202), doc
        # The rejection is given in the console's approvals view, in Chromium.
        await _reject_in_the_console(base, rejecting["escalation_id"])
        status, doc = await _json(
            session,
            "POST",
            f"{base}/v1/tasks/{cancel_id}/cancel",
            json={"reason": "not needed"},
            headers=BOB,
        )
        assert status == 202, doc

        # The guided revision is voted on, finds no quorum again, and escalates again.
        again = await _open_escalation(session, base, reject_id, not_id=rejecting["escalation_id"])
        status, doc = await _answer(
            session, base, again["escalation_id"], {"action": "cancel"}, ALICE
        )
        assert status in (200, 202), doc

        tasks = {approve_id, reject_id, cancel_id}
        results = await read_topic(run, RESULTS, lambda rs: set(outcomes_by_task(rs)) >= tasks, 180)
        # A second answer to an answered escalation is refused, and says why.
        status, doc = await _answer(
            session, base, first["escalation_id"], {"action": "cancel"}, BOB
        )
        assert status == 409, doc
        assert "already answered (approve) by alice" in doc["error"]["message"]

    outcomes = outcomes_by_task(results)
    assert all(len(outcomes[t]) == 1 for t in tasks), outcomes  # each ended once
    ended = {
        e.task_id: e.body
        for e in (CODEC.decode(r.value) for r in results)
        if isinstance(e.body, TaskCompleted | TaskFailed)
    }
    done = ended[approve_id]
    assert isinstance(done, TaskCompleted), done
    assert done.approved_by == "alice"
    cancelled = ended[reject_id]
    assert isinstance(cancelled, TaskFailed), cancelled
    assert cancelled.reason.startswith("cancelled by alice"), cancelled.reason
    stopped = ended[cancel_id]
    assert isinstance(stopped, TaskFailed), stopped
    assert stopped.reason == "cancelled by bob: not needed"

    # The approver is on the log, once; the guidance reached the model.
    log = await read_topic(run, TASK_EVENTS, lambda rs: True, 30, drain_s=2)
    answers = {
        e.message_id: e.body
        for e in (CODEC.decode(r.value) for r in log)
        if e.task_id == approve_id and isinstance(e.body, EscalationAnswered)
    }
    assert [a.principal for a in answers.values()] == ["alice"]
    asked = [json.loads(line) for line in prompts.read_text().splitlines()]
    guided = [p for p in asked if p["task_id"] == reject_id and GUIDANCE in p["prompt"]]
    assert guided, "no model call of the rejected task carried the guidance"
    assert {p["role"] for p in guided} <= {"coder", "researcher"}
    await assert_log_checks(run)


BUDGET = 4_000
USAGE_TYPES = ("StepCompleted", "StepFailed", "StepRetrying", "UsageReported")
# The arranged task: seven quick steps and a straggler in parallel, then a step
# whose prompt alone is bigger than the budget (so the task must stop for want
# of budget after the parallel steps, whatever the grants were); three agents.
ARRANGED_BUDGET = 16_000
QUICK = [f"q{i}" for i in range(7)]
HEAVY = "x" * 40_000  # ~20k tokens of input at the worst-case estimate of 2 chars a token


def _plan(steps: list[str], last_description: str = "") -> list[dict[str, Any]]:
    plan: list[dict[str, Any]] = [
        {"step_id": s, "role": "coder", "title": f"write module {s}", "files": [f"{s}.py"]}
        for s in steps
    ]
    plan.append(
        {
            "step_id": "t",
            "role": "coder",
            "title": "tie them",
            "description": last_description,
            "depends_on": steps,
        }
    )
    return plan


def _draw(task_id: str, step_id: str, attempt: int) -> str | None:
    """The fault the coder's call of (task, step, attempt) draws under the team's
    flaky profile and seed (the services' SYNOD_LLM_SIM_SEED is the default, 0)."""
    sim = SimBackend(profile=load_profile("flaky"))
    request = LLMRequest(role="coder", task_id=task_id, step_id=step_id, attempt=attempt, prompt="")
    return sim.decide(request).fault


def _arranged_task_id(tag: str) -> tuple[str, str]:
    """A task id whose flaky draws give one of the first wave's steps a transient
    fault on its first run and none on its rerun (the worker numbers the r-th
    retry's call attempt + 1000 r), and no fault to any other call; and that step."""
    for n in range(100_000):
        task_id = f"budget-faults-{tag}-{n}"
        flaky = [s for s in QUICK[:3] if _draw(task_id, s, 0) == "transient"]
        if len(flaky) != 1 or _draw(task_id, flaky[0], 1000) is not None:
            continue
        others = [(s, 0) for s in QUICK if s != flaky[0]] + [(STRAGGLER, 0), (STRAGGLER, 1)]
        if all(_draw(task_id, s, a) is None for s, a in others):
            return task_id, flaky[0]
    raise AssertionError("no task id with the arranged draws: has the flaky profile changed?")


async def test_a_small_token_budget_under_faults_stops_at_its_limit(
    team: tuple[LocalRun, Path],
) -> None:
    run, _ = team
    tag = uuid.uuid4().hex[:6]
    arranged, flaky_step = _arranged_task_id(tag)
    steps = [*QUICK, STRAGGLER]
    await asyncio.gather(
        _budgeted(run, f"budget-small-{tag}", BUDGET, _plan([f"s{i}" for i in range(8)])),
        _budgeted(
            run,
            arranged,
            ARRANGED_BUDGET,
            _plan(steps, HEAVY),
            labels={"team.agents": "3"},
            retried=flaky_step,
            hedged=STRAGGLER,
        ),
    )


async def _budgeted(
    run: LocalRun,
    task_id: str,
    budget: int,
    plan: list[dict[str, Any]],
    labels: dict[str, str] | None = None,
    retried: str = "",
    hedged: str = "",
) -> None:
    async with aiohttp.ClientSession() as session:
        status, doc = await _json(
            session,
            "POST",
            f"{run.gateway_url}/v1/tasks",
            json={
                "task_id": task_id,
                "goal": "modules and a test",
                "plan": plan,
                "budget": {"max_tokens": budget, "on_exhausted": "fail"},
                # The one juror of this team: its answer can be decided.
                "reviewers": 1,
                "labels": labels or {},
            },
            headers=ALICE,
        )
        assert status == 202, doc
    results = await read_topic(run, RESULTS, lambda rs: task_id in outcomes_by_task(rs), 240)
    [outcome] = [e.body for e in (CODEC.decode(r.value) for r in results) if e.task_id == task_id]
    log = await read_topic(run, TASK_EVENTS, lambda rs: True, 30, drain_s=3)
    mine = [e for e in (CODEC.decode(r.value) for r in log) if e.task_id == task_id]
    records: dict[str, Any] = {}
    for e in mine:
        if e.type in USAGE_TYPES:
            records.setdefault(e.message_id, e.body.usage)
    tokens = sum(u.input_tokens + u.output_tokens for u in records.values())
    kinds = sorted({e.type for e in mine})
    print(
        f"budget task {task_id}: {type(outcome).__name__} "
        f"{getattr(outcome, 'reason', '')[:120]!r}; "
        f"{len(records)} usage records, {tokens} tokens of {budget}; record types {kinds}"
    )
    assert tokens <= budget
    spent = outcome.usage
    assert spent.input_tokens + spent.output_tokens == tokens  # every call on the log
    assert spent.calls == sum(u.calls for u in records.values())
    if retried or hedged:
        _assert_retry_and_hedge(task_id, mine, records, retried, hedged)
        assert isinstance(outcome, TaskFailed), outcome  # the last step cannot fit
    if isinstance(outcome, TaskFailed):
        assert outcome.error_class == "budget", outcome.reason
        assert "the budget is spent" in outcome.reason
    await assert_log_checks(run, task_id=task_id)


def _assert_retry_and_hedge(
    task_id: str, mine: list[Any], records: dict[str, Any], retried: str, hedged: str
) -> None:
    """The arranged faults happened, and what they spent is in the sum."""
    first = derived_id(task_id, f"step/{retried}/0")
    retrying = [e for e in mine if e.type == "StepRetrying" and e.body.step_id == retried]
    assert retrying, f"{retried} drew a 429 on its first run but was never parked for retry"
    assert all(e.message_id in records for e in retrying)
    reruns = [e for e in mine if e.type == "StepCompleted" and e.body.step_id == retried]
    assert any(first in e.causes for e in reruns), "the retried run's completion is missing"
    assert all(e.message_id in records for e in reruns)

    hedges = [
        e
        for e in mine
        if isinstance(e.body, StepRequested)
        and e.body.step_id == hedged
        and e.body.prompt_variant == "hedge"
    ]
    assert hedges, f"the straggler {hedged} was never hedged"
    straggler = derived_id(task_id, f"step/{hedged}/0")
    cancels = [e.body for e in mine if isinstance(e.body, StepCancelled)]
    assert any(straggler in c.request_ids for c in cancels), cancels
    # The loser's call was cut off (charged its worst case) or ended on its own:
    # either way a record of its usage is on the log and in the sum.
    lost = [
        e
        for e in mine
        if (isinstance(e.body, UsageReported) and e.body.request_id == straggler)
        or (e.type in ("StepCompleted", "StepFailed") and straggler in e.causes)
    ]
    assert lost, "no usage record of the hedge's loser"
    assert all(e.message_id in records for e in lost)
    assert sum(e.body.usage.input_tokens + e.body.usage.output_tokens for e in lost) > 0
