"""The web console in a real headless Chromium, against the whole team as processes.

Debian's `chromium` driven by Playwright for Python through its executable
path (no browser download). One run, in order: a request without a token and
one with a wrong token get the login page with the gateway's message; with the
right token, a task sent as plain JSON on synod.tasks appears in the list and
reaches completed without a reload; its page draws one DAG node per step,
coloured by the step's state, and the ballot with every juror's vote and the
decision; an unknown task id says so; a dead letter is replayed from the UI
once, and a second replay is refused; a killed instance goes suspect on the
agents page and comes back when started again. Screenshots (light, dark,
phone-sized) are kept in SYNOD_TEST_ARTIFACTS (default: a folder in /tmp).
"""

from __future__ import annotations

import json
import os
import re
import signal
import tempfile
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from tests.localteam import local_team, send_goals

from synod.core.deadletters import dead_letter_id
from synod.dev.localrun import LocalRun
from synod.transport.topics import DLQ, TASKS, topic_name
from synod.wire import Codec, DeadLetter, Envelope, Sender

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("SYNOD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
]
TOKEN = f"console-{uuid.uuid4().hex[:12]}"
CODEC = Codec()
WAIT_MS = 40_000


def artifacts() -> Path:
    folder = Path(
        os.environ.get("SYNOD_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "synod-console"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def team(kafka: Any, tmp_path: Path) -> AsyncIterator[LocalRun]:
    env = {
        "SYNOD_LLM_SIM_LATENCY": "exponential:0.05",
        "SYNOD_API_TOKENS": TOKEN,
        "SYNOD_HEARTBEAT_INTERVAL_S": "0.5",
    }
    replicas = {
        "gateway": 1,
        "planner": 1,
        "researcher": 1,
        "coder": 1,
        "reviewer": 3,
        "consensus": 1,
    }
    async with local_team(kafka.bootstrap, tmp_path, "console", replicas, env) as run:
        yield run


def api(run: LocalRun, path: str) -> Any:
    request = urllib.request.Request(
        f"{run.gateway_url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def publish_dead_letter(run: LocalRun, task_id: str) -> str:
    """A dead letter as a failing consumer writes it: a valid task it could not handle."""
    source = topic_name(TASKS, run.prefix)
    offset = 10_000 + int(uuid.uuid4().int % 10_000)
    value = json.dumps({"task_id": task_id, "goal": "Replayed from the dead letters"}).encode()
    letter_id = dead_letter_id(source, 0, offset)
    body = DeadLetter(
        source_topic=source,
        partition=0,
        offset=offset,
        key=task_id.encode(),
        value=value,
        reason="handler_error",
        message="the handler failed (a test's dead letter)",
        dead_letter_id=letter_id,
    )
    envelope = Envelope.new(body, sender=Sender(role="planner", instance="planner-0"))
    producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic_name(DLQ, run.prefix), CODEC.encode(envelope))
    finally:
        await producer.stop()
    return letter_id


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver")
    return CHROMIUM


async def test_the_console_shows_a_live_team_and_acts_on_it(team: LocalRun, chromium: str) -> None:
    shots = artifacts()
    console_url = f"{team.gateway_url}/console/"
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            page.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            expect = playwright_api.expect
            expect.set_options(timeout=WAIT_MS)

            # No token: the login page with the gateway's reason; a wrong one: refused.
            await page.goto(console_url)
            await expect(page.locator(".login")).to_contain_text("needs a bearer token")
            await page.fill("#token", "not-the-token")
            await page.click("button[type=submit]")
            await expect(page.locator(".login .problem")).to_contain_text("That token was refused")
            await expect(page.locator(".login .problem")).to_contain_text("SYNOD_API_TOKENS")
            await page.screenshot(path=shots / "login-refused.png")
            await page.fill("#token", TOKEN)
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Tasks")

            # A task sent as plain JSON on synod.tasks appears, and completes, live.
            task_id = f"ui-{uuid.uuid4().hex[:8]}"
            await send_goals(
                team,
                {task_id: "Write a function that reverses a string"},
                labels={"team": "console"},
            )
            row = page.locator(f'tr[data-task="{task_id}"]')
            await expect(row).to_be_visible()
            await expect(row).to_have_attribute("data-state", "completed")
            await page.fill("#label", "team=console")
            await expect(page.locator("tbody tr")).to_have_count(1)
            await page.screenshot(path=shots / "tasks.png")

            # Its page: one node per step coloured by state, and the ballot.
            await row.locator("a").click()
            await expect(page.locator(".task")).to_have_attribute("data-state", "completed")
            detail = api(team, f"/v1/tasks/{task_id}/detail")
            steps = detail["task"]["steps"]
            nodes = page.locator("svg.dag g.node")
            await expect(nodes).to_have_count(len(steps))
            for step in steps:
                node = page.locator(f'svg.dag g.node[data-step="{step["step_id"]}"]')
                assert await node.get_attribute("data-state") == step["status"] == "completed"
                assert "st-completed" in (await node.get_attribute("class") or "")
                fill = await node.locator("rect").evaluate("r => getComputedStyle(r).stroke")
                assert fill == "rgb(28, 138, 74)", fill  # --completed
            critical = page.locator('svg.dag g.node[data-critical="true"]')
            await expect(critical).to_have_count(len(detail["dag"]["critical_path"]))
            # Its CAP choice and where its outcome stands (docs/cap.md): a cp task decided
            # by a quorum of the full electorate is final; nothing was overturned.
            assert (detail["task"]["partition_mode"], detail["task"]["settlement"]) == ("cp", "")
            settlement = page.locator(".task .settlement")
            await expect(settlement).to_have_text("cp · final")
            await expect(settlement).to_have_attribute("data-overturned", "0")
            ballot = detail["ballots"][-1]
            card = page.locator(f'.ballot[data-proposal="{ballot["proposal_id"]}"]').last
            votes = card.locator("tr.vote")
            await expect(votes).to_have_count(len(ballot["electorate"]))
            for voter in ballot["electorate"]:
                await expect(card.locator(f'tr.vote[data-voter="{voter}"]')).to_be_visible()
            first_vote = ballot["votes"][0]
            if first_vote["rationale"]:
                await expect(card).to_contain_text(first_vote["rationale"][:40])
            await expect(card.locator(".decision")).to_contain_text(
                f"Decision: {ballot['decision']['outcome']}"
            )
            await page.screenshot(path=shots / "task.png")
            await page.screenshot(path=shots / "task-full.png", full_page=True)
            await page.click("text=Show causal order")
            await expect(page.locator("#timeline-order")).to_have_text("causal order")
            await expect(page.locator("ol.timeline li")).to_have_count(
                len(detail["timeline"]["events"])
            )

            # An unknown task id in the URL: a clear message, not a blank page.
            await page.goto(f"{console_url}#/tasks/no-such-task")
            await expect(page.locator(".problem")).to_contain_text("no task 'no-such-task'")

            # A dead letter replayed once from the UI; a second replay is refused.
            replayed_task = f"dl-{uuid.uuid4().hex[:8]}"
            letter = await publish_dead_letter(team, replayed_task)
            await page.goto(f"{console_url}#/deadletters")
            await page.locator(f'tr[data-letter="{letter}"] a').click()
            await page.click("#replay")
            await page.click("#confirm-ok")
            await expect(page.locator("#replay-status")).to_contain_text("Replayed to")
            await page.goto(f"{console_url}#/tasks")
            await expect(page.locator(f'tr[data-task="{replayed_task}"]')).to_have_attribute(
                "data-state", "completed"
            )
            await page.goto(f"{console_url}#/deadletters/{letter}")
            await page.click("#replay")
            await page.click("#confirm-ok")
            await expect(page.locator("#replay-status")).to_contain_text("already replayed")

            # A killed instance goes suspect, and is alive again once restarted.
            victim = next(c for c in team.children if c.role == "coder")
            await page.goto(f"{console_url}#/agents")
            agent = page.locator(f'tr[data-instance="{victim.instance}"]')
            await expect(agent).to_have_attribute("data-health", "alive")
            assert victim.proc is not None
            os.killpg(victim.proc.pid, signal.SIGKILL)
            victim.proc.wait()
            await expect(agent).to_have_attribute("data-health", "suspect")
            await page.screenshot(path=shots / "agents-suspect.png")
            victim.start()
            await expect(agent).to_have_attribute("data-health", "alive")
            await expect(agent.locator("td").nth(6)).to_have_text(re.compile(r"[1-9]"))

            # Dark and phone-sized: the same task page, readable.
            dark = await browser.new_context(
                viewport={"width": 390, "height": 844}, color_scheme="dark"
            )
            phone = await dark.new_page()
            phone.set_default_timeout(WAIT_MS)
            await phone.goto(console_url)
            await phone.fill("#token", TOKEN)
            await phone.click("button[type=submit]")
            await phone.goto(f"{console_url}#/tasks/{task_id}")
            await expect(phone.locator("svg.dag g.node")).to_have_count(len(steps))
            await phone.screenshot(path=shots / "task-phone-dark.png")
            assert errors == [], errors
        except BaseException:
            await page.screenshot(path=shots / "failure.png", full_page=True)
            for log in team.run_dir.glob("gateway*.log"):
                (shots / log.name).write_bytes(log.read_bytes())
            raise
        finally:
            await browser.close()
