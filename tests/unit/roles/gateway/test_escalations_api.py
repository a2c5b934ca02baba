"""`/v1/escalations` without Kafka: answers checked, recorded once, refused with why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from synod.core.taskview import TaskIndex
from synod.roles.gateway.app import create_app
from synod.roles.gateway.view import TaskFeed
from synod.wire import Candidate, ContentType, Envelope, Sender
from synod.wire.messages import EscalationAnswered, EscalationRaised, TaskCancelRequested

PLANNER = Sender(role="planner", instance="planner-0")
EID = "t1/escalation/no_quorum/2"
TOKENS = {"Authorization": "Bearer tok-alice"}


class LoggingPublisher:
    """Publishes, and (as the planner would) puts answers into the task's log at once."""

    def __init__(self, feed: TaskFeed, log_answers: bool = True) -> None:
        self.feed = feed
        self.log_answers = log_answers
        self.sent: list[tuple[str, Envelope[Any]]] = []

    async def publish(
        self, topic: str, envelope: Envelope[Any], content_type: ContentType = "avro"
    ) -> None:
        self.sent.append((topic, envelope))
        if self.log_answers and isinstance(envelope.body, EscalationAnswered):
            self.feed.apply(envelope)


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient[Any, Any], LoggingPublisher]]:
    feed = TaskFeed(TaskIndex())
    publisher = LoggingPublisher(feed)
    app = create_app(
        publisher,
        feed,
        tokens=["alice=tok-alice", "tok-plain"],
        publish_timeout_s=0.5,
    )
    raised = EscalationRaised(
        escalation_id=EID,
        kind="no_quorum",
        reason="the reviewers reached no quorum",
        proposal_id="t1/answer-2",
        candidates=[Candidate(candidate_id="answer", content="def f(): ...")],
    )
    feed.apply(Envelope.new(raised, sender=PLANNER, task_id="t1"))
    c: TestClient[Any, Any] = TestClient(TestServer(app))
    await c.start_server()
    yield c, publisher
    await c.close()


async def answer(c: TestClient[Any, Any], doc: Any, **headers: str) -> tuple[int, Any]:
    response = await c.post(f"/v1/escalations/{EID}/answer", json=doc, headers=headers or TOKENS)
    return response.status, await response.json()


async def test_open_escalations_are_listed_with_their_candidates(client: Any) -> None:
    c, _ = client
    response = await c.get("/v1/escalations", headers=TOKENS)
    [listed] = (await response.json())["escalations"]
    assert listed["escalation_id"] == EID
    assert listed["state"] == "open"
    assert [x["candidate_id"] for x in listed["candidates"]] == ["answer"]


async def test_an_approval_is_recorded_with_its_principal_and_a_second_is_refused(
    client: Any,
) -> None:
    c, publisher = client
    status, doc = await answer(c, {"action": "approve", "candidate_id": "answer"})
    assert status == 200, doc
    assert doc["recorded"] is True
    assert doc["escalation"]["answer"]["principal"] == "alice"
    [(topic, sent)] = publisher.sent
    assert topic == "synod.escalations"
    assert sent.body.principal == "alice"

    status, doc = await answer(
        c, {"action": "cancel"}, Authorization="Bearer tok-plain"
    )  # someone else, later
    assert status == 409
    assert doc["error"]["code"] == "already_answered"
    assert "by alice at" in doc["error"]["message"]
    assert len(publisher.sent) == 1


async def test_an_approval_of_a_candidate_not_on_the_ballot_says_what_to_send(
    client: Any,
) -> None:
    c, publisher = client
    status, doc = await answer(c, {"action": "approve", "candidate_id": "b"})
    assert status == 400
    assert "send candidate_id as one of: answer" in doc["error"]["message"]
    assert publisher.sent == []


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"action": "raise_budget", "budget": {"max_tokens": -5}}, "whole number of tokens >= 1"),
        (
            {"action": "raise_budget", "budget": {"max_tokens": 9, "on_exhausted": "pause"}},
            "one of fail, escalate, warn",
        ),
        ({"action": "maybe"}, "approve, reject, raise_budget, cancel"),
        ({"action": "reject"}, "says what to change (guidance)"),
        ({"action": "approve", "candiate_id": "answer"}, "unknown field 'candiate_id'"),
    ],
)
async def test_bad_answers_get_a_clear_error(client: Any, doc: Any, says: str) -> None:
    c, publisher = client
    status, body = await answer(c, doc)
    assert status in (400, 422), body
    assert says in body["error"]["message"], body
    assert publisher.sent == []


async def test_an_answer_the_planner_has_not_logged_yet_is_accepted_and_holds(
    client: Any,
) -> None:
    c, publisher = client
    publisher.log_answers = False
    status, doc = await answer(c, {"action": "reject", "guidance": "handle empty input"})
    assert status == 202
    assert doc["recorded"] is False
    status, doc = await answer(c, {"action": "cancel"})
    assert status == 409  # this gateway sent one already


async def test_unknown_escalations_and_a_cancel(client: Any) -> None:
    c, publisher = client
    response = await c.get("/v1/escalations/nope", headers=TOKENS)
    assert response.status == 404
    response = await c.post("/v1/tasks/t9/cancel", json={"reason": "stop"}, headers=TOKENS)
    assert response.status == 202
    [(topic, sent)] = publisher.sent
    assert topic == "synod.tasks"
    assert isinstance(sent.body, TaskCancelRequested)
    assert sent.body.principal == "alice"


@pytest.mark.parametrize(
    ("budget", "says"),
    [
        ({"max_tokens": -5}, "budget.max_tokens"),
        ({"on_exhausted": "pause"}, "budget.on_exhausted"),
    ],
)
async def test_a_task_with_a_bad_budget_gets_a_clear_error(
    client: Any, budget: dict[str, Any], says: str
) -> None:
    c, _ = client
    response = await c.post("/v1/tasks", json={"goal": "x", "budget": budget}, headers=TOKENS)
    doc = await response.json()
    assert response.status == 422, doc
    assert says in doc["error"]["message"]
    print(doc["error"]["message"])
