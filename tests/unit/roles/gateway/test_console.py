"""The console's endpoints on the gateway, without Kafka: an in-memory feed and folds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from synod.core.deadletters import dead_letter_id
from synod.core.taskview import TaskIndex
from synod.errors import BrokerError
from synod.roles.gateway.app import create_app
from synod.roles.gateway.operations import Operations
from synod.roles.gateway.view import TaskFeed
from synod.roles.gateway.webconsole import STATIC_FILES
from synod.wire import (
    Body,
    Candidate,
    Codec,
    ContentType,
    DeadLetter,
    Decision,
    Envelope,
    Heartbeat,
    PlanProposed,
    PlanStep,
    Sender,
    StepCompleted,
    StepRequested,
    TaskCompleted,
    TaskSubmitted,
    Usage,
    Vote,
    VoteRequested,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PLANNER = Sender(role="planner", instance="planner-0")
CODEC = Codec()
TOKEN = "s3cret-console-token"


@dataclass
class Meta:
    partition: int
    offset: int


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Envelope[Any]]] = []
        self.raw: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        self.fail: Exception | None = None

    async def publish(
        self, topic: str, envelope: Envelope[Any], content_type: ContentType = "avro"
    ) -> None:
        self.sent.append((topic, envelope))

    async def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Meta:
        if self.fail is not None:
            raise self.fail
        self.raw.append((topic, value, key, list(headers or [])))
        return Meta(0, len(self.raw) - 1)


@dataclass
class Console:
    client: TestClient[Any, Any]
    feed: TaskFeed
    ops: Operations
    publisher: FakePublisher
    now: list[float]

    def auth(self, token: str = TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def console() -> AsyncIterator[Console]:
    feed, ops, publisher = TaskFeed(TaskIndex()), Operations(), FakePublisher()
    now = [T0.timestamp() + 100]
    app = create_app(
        publisher,
        feed,
        topic_prefix="p.",
        tokens=[TOKEN],
        operations=ops,
        raw_publisher=publisher,
        trace_url="http://traces.local/trace/{trace_id}",
        keepalive_s=0.5,
        clock=lambda: now[0],
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    yield Console(client, feed, ops, publisher, now)
    await client.close()


def env(body: Body, task_id: str | None, seconds: float, **kw: Any) -> Envelope[Any]:
    kw.setdefault("sender", PLANNER)
    return Envelope.new(body, task_id=task_id, created_at=T0 + timedelta(seconds=seconds), **kw)


def run_task(feed: TaskFeed, task_id: str, *, labels: dict[str, str] | None = None) -> None:
    """A two-step task through one ballot of three jurors to completion."""
    trace = {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}
    submitted = env(TaskSubmitted(goal=f"goal of {task_id}", labels=labels or {}), task_id, 0)
    submitted = submitted.model_copy(update={"trace": submitted.trace.model_validate(trace)})
    steps = [PlanStep(step_id="a"), PlanStep(step_id="b", depends_on=["a"])]
    req_a = env(StepRequested(step_id="a", plan_id="p", role="coder"), task_id, 2)
    req_b = env(StepRequested(step_id="b", plan_id="p", role="coder"), task_id, 4)
    usage = Usage(model="sim-1", calls=1, input_tokens=10, output_tokens=5, cost_usd=0.01)
    log = [
        submitted,
        env(PlanProposed(plan_id="p", steps=steps), task_id, 1),
        req_a,
        env(
            StepCompleted(step_id="a", output="A", usage=usage, duration_s=1.5),
            task_id,
            3,
            causes=[req_a.message_id],
        ),
        req_b,
        env(
            StepCompleted(step_id="b", output="B", usage=usage, duration_s=0.5),
            task_id,
            5,
            causes=[req_b.message_id],
        ),
        env(
            VoteRequested(
                proposal_id=f"{task_id}/answer",
                candidates=[Candidate(candidate_id="c1", content="the answer")],
                electorate=["r0", "r1", "r2"],
            ),
            task_id,
            6,
        ),
        env(
            Decision(
                decision_id="d",
                proposal_id=f"{task_id}/answer",
                ballot=1,
                outcome="c1",
                tally={"c1": 3.0},
                quorum=2,
                votes_counted=3,
            ),
            task_id,
            8,
        ),
        env(TaskCompleted(result="done", usage=usage), task_id, 9),
    ]
    for offset, e in enumerate(log):
        feed.apply(e, offset)
    for n in range(3):
        vote = Vote(
            proposal_id=f"{task_id}/answer",
            voter=f"r{n}",
            choice="c1",
            rationale=f"juror {n} likes it",
        )
        feed.add_vote(env(vote, task_id, 7, sender=Sender(role="reviewer", instance=f"r{n}")))


def dead_letter(offset: int, reason: str = "handler_error", value: bytes | None = None) -> bytes:
    body = DeadLetter(
        source_topic="p.synod.tasks",
        partition=0,
        offset=offset,
        key=b"t-x",
        value=value if value is not None else b'{"task_id": "t-x", "goal": "again"}',
        reason=reason,
        message="it broke",
        dead_letter_id=dead_letter_id("p.synod.tasks", 0, offset),
    )
    return CODEC.encode(env(body, None, 10, sender=Sender(role="coder", instance="coder-0")))


# ---------------------------------------------------------------- the page and auth


async def test_the_console_is_served_without_a_token_and_its_api_needs_one(
    console: Console,
) -> None:
    root = await console.client.get("/", allow_redirects=False)
    assert (root.status, root.headers["Location"]) == (302, "/console/")
    page = await console.client.get("/console/")
    assert page.status == 200
    html = await page.text()
    assert '<script type="module" src="/console/app.js">' in html
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    for name, kind in STATIC_FILES.items():
        response = await console.client.get(f"/console/{name}")
        assert (response.status, response.headers["Content-Type"]) == (200, kind), name
        assert TOKEN not in await response.text()
    missing = await console.client.get("/console/webconsole.py")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"

    refused = await console.client.get("/v1/console")
    assert refused.status == 401
    wrong = await console.client.get("/v1/console", headers=console.auth("nope"))
    assert (await wrong.json())["error"]["code"] == "invalid_token"
    about = await (await console.client.get("/v1/console", headers=console.auth())).json()
    assert about == {
        "instance": "gateway-0",
        "auth_required": True,
        "trace_url": "http://traces.local/trace/{trace_id}",
        "workspace": False,
        "approvals": True,
    }


# ---------------------------------------------------------------- tasks


async def test_the_task_list_filters_by_text_state_and_label(console: Console) -> None:
    run_task(console.feed, "t-done", labels={"team": "blue"})
    console.feed.apply(
        env(TaskSubmitted(goal="write a parser", labels={"team": "red"}), "t-new", 0)
    )
    get = console.client.get

    async def ids(query: str) -> list[str]:
        doc = await (await get(f"/v1/tasks{query}", headers=console.auth())).json()
        return [t["task_id"] for t in doc["tasks"]]

    assert await ids("") == ["t-new", "t-done"]
    assert await ids("?state=completed") == ["t-done"]
    assert await ids("?q=PARSER") == ["t-new"]
    assert await ids("?q=team=blue") == ["t-done"]
    assert await ids("?label=team=red") == ["t-new"]
    assert await ids("?label=team") == ["t-new", "t-done"]
    assert await ids("?label=owner") == []
    row = (await (await get("/v1/tasks?q=t-done", headers=console.auth())).json())["tasks"][0]
    assert row["usage"]["cost_usd"] == 0.01
    assert (row["steps"], row["steps_completed"]) == (2, 2)
    assert (row["consistency"], row["partition_mode"]) == ("strong", "cp")
    bad = await get("/v1/tasks?limit=0", headers=console.auth())
    assert bad.status == 400
    assert (await bad.json())["error"]["details"]["parameter"] == "limit"


async def test_the_live_task_stream_sends_every_task_then_each_change(console: Console) -> None:
    run_task(console.feed, "t-old")
    response = await console.client.get("/v1/streams/tasks", headers=console.auth())
    assert response.headers["Content-Type"] == "text/event-stream"
    seen: list[tuple[str, str]] = []

    async def read_until(count: int) -> None:
        async with asyncio.timeout(5):
            event = ""
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "task":
                    doc = json.loads(line[6:])
                    seen.append((doc["task_id"], doc["state"]))
                    if len(seen) >= count:
                        return

    await read_until(1)
    assert seen == [("t-old", "completed")]
    console.feed.apply(env(TaskSubmitted(goal="new"), "t-live", 0), 0)
    await read_until(2)
    console.feed.apply(
        env(PlanProposed(plan_id="p", steps=[PlanStep(step_id="a")]), "t-live", 1), 1
    )
    await read_until(3)
    assert seen[1:] == [("t-live", "planning"), ("t-live", "planning")]
    response.close()


async def test_a_task_detail_has_dag_attempts_ballot_with_votes_and_trace(
    console: Console,
) -> None:
    run_task(console.feed, "t-1")
    response = await console.client.get("/v1/tasks/t-1/detail", headers=console.auth())
    assert response.status == 200
    doc = await response.json()
    assert [(n["step_id"], n["state"], n["depth"]) for n in doc["dag"]["nodes"]] == [
        ("a", "completed", 0),
        ("b", "completed", 1),
    ]
    assert doc["dag"]["critical_path"] == ["a", "b"]
    assert [a["duration_s"] for a in doc["attempts"]["a"]] == [1.5]
    (ballot,) = doc["ballots"]
    assert ballot["electorate"] == ["r0", "r1", "r2"]
    assert [(v["voter"], v["rationale"]) for v in ballot["votes"]] == [
        ("r0", "juror 0 likes it"),
        ("r1", "juror 1 likes it"),
        ("r2", "juror 2 likes it"),
    ]
    assert ballot["decision"]["outcome"] == "c1"
    assert ballot["status"] == "confirmed"
    assert doc["trace_id"] == "ab" * 16
    assert doc["trace_url"] == f"http://traces.local/trace/{'ab' * 16}"
    assert doc["cost"]["by_role"]["coder"]["cost_usd"] == 0.02
    assert len(doc["timeline"]["events"]) == 9
    assert sorted(doc["timeline"]["causal_order"]) == list(range(9))


async def test_an_unknown_task_is_a_clear_404(console: Console) -> None:
    for path in ("/v1/tasks/nope/detail", "/v1/tasks/nope/workspace"):
        response = await console.client.get(path, headers=console.auth())
        assert response.status == 404
        error = (await response.json())["error"]
        assert error["code"] == "not_found"
        assert "nope" in error["message"]


async def test_without_a_workspace_reader_the_files_are_503(console: Console) -> None:
    run_task(console.feed, "t-1")
    response = await console.client.get("/v1/tasks/t-1/workspace", headers=console.auth())
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "unavailable"


# ---------------------------------------------------------------- agents and cost


async def test_agents_show_heartbeat_age_and_go_suspect_when_silent(console: Console) -> None:
    for seq in range(6):
        beat = Heartbeat(
            instance="coder-0", role="coder", seq=seq, pid=42, breakers={"sim-1": "closed"}
        )
        console.ops.heartbeat_record(CODEC.encode(env(beat, None, 90 + seq)))
    console.now[0] = T0.timestamp() + 96
    doc = await (await console.client.get("/v1/agents", headers=console.auth())).json()
    (agent,) = doc["agents"]
    assert (agent["instance"], agent["role"], agent["health"]) == ("coder-0", "coder", "alive")
    assert agent["heartbeat_age_s"] == 1.0
    assert agent["breakers"] == {"sim-1": "closed"}
    console.now[0] = T0.timestamp() + 200
    doc = await (await console.client.get("/v1/agents", headers=console.auth())).json()
    assert doc["agents"][0]["health"] == "suspect"


async def test_cost_sums_tasks_by_role_and_model(console: Console) -> None:
    run_task(console.feed, "t-1")
    run_task(console.feed, "t-2")
    doc = await (await console.client.get("/v1/cost", headers=console.auth())).json()
    assert doc["total"]["cost_usd"] == pytest.approx(0.04)
    assert doc["by_model"]["sim-1"]["input_tokens"] == 40
    assert {t["task_id"] for t in doc["tasks"]} == {"t-1", "t-2"}


# ---------------------------------------------------------------- dead letters


async def test_dead_letters_list_filter_show_and_replay_once(console: Console) -> None:
    console.ops.dead_letter_record(dead_letter(5), 0, 0)
    console.ops.dead_letter_record(dead_letter(6, reason="undecodable", value=b"{oops"), 0, 1)
    get, auth = console.client.get, console.auth()
    listed = await (await get("/v1/deadletters", headers=auth)).json()
    assert listed["total"] == 2
    assert listed["reasons"] == ["handler_error", "undecodable"]
    only = await (await get("/v1/deadletters?reason=undecodable", headers=auth)).json()
    assert [d["reason"] for d in only["dead_letters"]] == ["undecodable"]
    by_topic = await (await get("/v1/deadletters?topic=synod.tasks", headers=auth)).json()
    assert by_topic["total"] == 2
    bad = await get("/v1/deadletters?since=yesterday", headers=auth)
    assert bad.status == 400
    assert "duration" in (await bad.json())["error"]["message"]

    letter = dead_letter_id("p.synod.tasks", 0, 5)
    shown = await (await get(f"/v1/deadletters/{letter}", headers=auth)).json()
    assert shown["decoded"]["body"]["goal"] == "again"
    assert shown["replay"] is None

    post = console.client.post
    url = f"/v1/deadletters/{letter}/replay"
    unconfirmed = await post(url, json={}, headers=auth)
    assert (await unconfirmed.json())["error"]["code"] == "confirmation_required"
    assert (await post(url, data="confirm", headers=auth)).status == 415
    done = await post(url, json={"confirm": True}, headers=auth)
    assert done.status == 200, await done.text()
    record = (await done.json())["replayed"]
    assert record["dead_letter_id"] == letter
    (copy, replay) = console.publisher.raw
    assert copy[:3] == ("p.synod.tasks", b'{"task_id": "t-x", "goal": "again"}', b"t-x")
    assert ("synod-replayed-from", letter.encode()) in copy[3]
    assert replay[0] == "p.synod.dlq.replays"
    assert replay[2] == letter.encode()

    again = await post(url, json={"confirm": True}, headers=auth)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "already_replayed"
    assert len(console.publisher.raw) == 2
    listed = await (await get("/v1/deadletters?reason=handler_error", headers=auth)).json()
    assert listed["dead_letters"][0]["replayed"] is True

    poison = dead_letter_id("p.synod.tasks", 0, 6)
    refused = await post(f"/v1/deadletters/{poison}/replay", json={"confirm": True}, headers=auth)
    assert (refused.status, (await refused.json())["error"]["code"]) == (409, "poison")
    unknown = await post("/v1/deadletters/dl-0/replay", json={"confirm": True}, headers=auth)
    assert unknown.status == 404


async def test_a_replay_the_broker_refuses_is_503_and_can_be_retried(console: Console) -> None:
    console.ops.dead_letter_record(dead_letter(5), 0, 0)
    letter = dead_letter_id("p.synod.tasks", 0, 5)
    url = f"/v1/deadletters/{letter}/replay"
    console.publisher.fail = BrokerError("down")
    failed = await console.client.post(url, json={"confirm": True}, headers=console.auth())
    assert (failed.status, (await failed.json())["error"]["code"]) == (503, "broker_unavailable")
    console.publisher.fail = None
    ok = await console.client.post(url, json={"confirm": True}, headers=console.auth())
    assert ok.status == 200


async def test_actions_from_another_site_are_refused(console: Console) -> None:
    console.ops.dead_letter_record(dead_letter(5), 0, 0)
    letter = dead_letter_id("p.synod.tasks", 0, 5)
    response = await console.client.post(
        f"/v1/deadletters/{letter}/replay",
        json={"confirm": True},
        headers={**console.auth(), "Origin": "http://evil.example"},
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "cross_origin"
    assert console.publisher.raw == []
    own = f"http://{console.client.host}:{console.client.port}"
    same = await console.client.post(
        f"/v1/deadletters/{letter}/replay",
        json={"confirm": True},
        headers={**console.auth(), "Origin": own},
    )
    assert same.status == 200
