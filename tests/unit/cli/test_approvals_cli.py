"""`synod approvals` against a live gateway app (aiohttp's test server on 127.0.0.1).

The CLI is synchronous (urllib); it runs in a thread while the gateway serves
on the test's event loop. Every refusal says what to send, and the exit status
is 1 for a refused or unreachable answer, 2 for a malformed one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from tests.unit.roles.gateway.test_escalations_api import EID, PLANNER, LoggingPublisher
from typer.testing import CliRunner, Result

from synod.cli.main import app
from synod.core.taskview import TaskIndex
from synod.roles.gateway.app import create_app
from synod.roles.gateway.view import TaskFeed
from synod.wire import Candidate, Envelope
from synod.wire.messages import EscalationAnswered, EscalationRaised


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[str, LoggingPublisher]]:
    feed = TaskFeed(TaskIndex())
    publisher = LoggingPublisher(feed)
    served = create_app(publisher, feed, tokens=["alice=tok-alice"], publish_timeout_s=0.5)
    raised = EscalationRaised(
        escalation_id=EID,
        kind="no_quorum",
        reason="the reviewers reached no quorum",
        proposal_id="t1/answer-2",
        candidates=[Candidate(candidate_id="answer", content="def f(): ...")],
    )
    feed.apply(Envelope.new(raised, sender=PLANNER, task_id="t1"))
    server = TestServer(served, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", publisher
    await server.close()


async def synod(url: str, *args: str, token: str = "tok-alice") -> Result:
    argv = ["approvals", *args, "--url", url, "--token", token]
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


async def test_list_and_show_print_the_open_escalation(gateway: Any) -> None:
    url, _ = gateway
    listed = await synod(url, "list")
    assert listed.exit_code == 0, listed.output
    assert EID in listed.stdout
    assert "no_quorum" in listed.stdout
    doc = json.loads((await synod(url, "list", "--json")).stdout)
    assert [e["escalation_id"] for e in doc["escalations"]] == [EID]
    shown = json.loads((await synod(url, "show", EID, "--json")).stdout)
    assert [c["candidate_id"] for c in shown["candidates"]] == ["answer"]
    none = await synod(url, "list", "--state", "answered")
    assert "no answered escalations" in none.stdout


async def test_an_unknown_escalation_says_how_to_find_the_right_one(gateway: Any) -> None:
    url, publisher = gateway
    for args in (["show", "nope"], ["approve", "nope"]):
        result = await synod(url, *args)
        assert result.exit_code == 1, result.output
        assert "no escalation 'nope' is known" in result.stderr
        assert "synod approvals list --state all" in result.stderr
    assert publisher.sent == []


async def test_an_approval_is_recorded_once_and_a_second_answer_is_refused(gateway: Any) -> None:
    url, publisher = gateway
    done = await synod(url, "approve", EID)
    assert done.exit_code == 0, done.output
    assert f"approve {EID}: recorded on the task's log" in done.stdout
    [(_, sent)] = publisher.sent
    assert isinstance(sent.body, EscalationAnswered)
    assert (sent.body.principal, sent.body.candidate_id) == ("alice", "answer")

    again = await synod(url, "reject", EID, "--guidance", "try again")
    assert again.exit_code == 1, again.output
    assert "already answered (approve) by alice" in again.stderr
    assert len(publisher.sent) == 1
    answered = json.loads((await synod(url, "list", "--state", "answered", "--json")).stdout)
    assert [e["answer"]["principal"] for e in answered["escalations"]] == ["alice"]


PAUSE = ["--on-exhausted", "pause"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["approve", EID, "--candidate", "nope"], "send candidate_id as one of: answer"),
        (
            ["answer", EID, "--action", "raise_budget", "--max-tokens", "-5"],
            "whole number of tokens >= 1",
        ),
        (
            ["answer", EID, "--action", "raise_budget", "--max-tokens", "9000", *PAUSE],
            "one of fail, escalate, warn",
        ),
        (["answer", EID, "--action", "maybe"], "approve, reject, raise_budget, cancel"),
        (["answer", EID, "--action", "reject"], "says what to change (guidance)"),
    ],
)
async def test_a_malformed_answer_exits_2_saying_what_to_send(
    gateway: Any, args: list[str], says: str
) -> None:
    url, publisher = gateway
    result = await synod(url, *args)
    assert result.exit_code == 2, result.output
    assert says in result.stderr, result.stderr
    assert publisher.sent == []


async def test_a_budget_raise_and_a_cancel_go_through(gateway: Any) -> None:
    url, publisher = gateway
    raised = await synod(
        url, "answer", EID, "--action", "raise_budget", "--max-tokens", "9000", "--json"
    )
    assert raised.exit_code == 0, raised.output
    assert json.loads(raised.stdout)["recorded"] is True
    [(_, sent)] = publisher.sent
    assert sent.body.budget is not None
    assert (sent.body.budget.max_tokens, sent.body.budget.on_exhausted) == (9000, "escalate")


async def test_no_token_or_no_gateway_is_a_clear_failure(gateway: Any) -> None:
    url, _ = gateway
    refused = await synod(url, "list", token="wrong")
    assert refused.exit_code == 1
    assert "error:" in refused.stderr
    gone = await synod("http://127.0.0.1:9", "list")
    assert gone.exit_code == 1
    assert "cannot reach the gateway at http://127.0.0.1:9" in gone.stderr
