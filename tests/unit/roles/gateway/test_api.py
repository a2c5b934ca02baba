"""The gateway's HTTP API without Kafka: a fake publisher and an in-memory task feed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from tests.polling import wait_until_async

from synod.core.taskview import TaskIndex
from synod.errors import BrokerError, EncodeError
from synod.roles.gateway.app import create_app
from synod.roles.gateway.view import TaskFeed
from synod.wire import (
    Body,
    Codec,
    ContentType,
    Decision,
    Envelope,
    PlanProposed,
    PlanStep,
    Sender,
    StepCompleted,
    TaskCompleted,
    TaskSubmitted,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PLANNER = Sender(role="planner", instance="planner-0")


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Envelope[Any]]] = []
        self.fail: Exception | None = None

    async def publish(
        self, topic: str, envelope: Envelope[Any], content_type: ContentType = "avro"
    ) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((topic, envelope))


class Gateway:
    def __init__(self, client: TestClient[Any, Any], publisher: FakePublisher, feed: TaskFeed):
        self.client = client
        self.publisher = publisher
        self.feed = feed

    async def submit(self, doc: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        response = await self.client.post("/v1/tasks", json=doc, **kwargs)
        return response.status, await response.json()


MakeGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway() -> AsyncIterator[MakeGateway]:
    clients: list[TestClient[Any, Any]] = []

    async def make(**options: Any) -> Gateway:
        publisher = FakePublisher()
        feed = TaskFeed(TaskIndex())
        client: TestClient[Any, Any] = TestClient(
            TestServer(create_app(publisher, feed, **options))
        )
        await client.start_server()
        clients.append(client)
        return Gateway(client, publisher, feed)

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> Gateway:
    return await make_gateway()


def env(body: Body, task_id: str, seconds: float) -> Envelope[Any]:
    return Envelope.new(
        body, sender=PLANNER, task_id=task_id, created_at=T0 + timedelta(seconds=seconds)
    )


def task_log(task_id: str) -> list[Envelope[Any]]:
    return [
        env(TaskSubmitted(goal="g"), task_id, 0),
        env(PlanProposed(plan_id="p", steps=[PlanStep(step_id="s1")]), task_id, 1),
        env(StepCompleted(step_id="s1", output="o"), task_id, 2),
        env(
            Decision(
                decision_id="d", proposal_id=f"{task_id}/answer", ballot=1, outcome="c", quorum=2
            ),
            task_id,
            3,
        ),
        env(TaskCompleted(result="done"), task_id, 4),
    ]


async def read_sse(
    response: ClientResponse, comments: list[str] | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Read a stream to its end: the events and the comment lines."""
    events: list[dict[str, Any]] = []
    comments = [] if comments is None else comments
    current: dict[str, Any] = {}
    async with asyncio.timeout(10):
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif line.startswith(":"):
                comments.append(line)
            else:
                name, _, value = line.partition(": ")
                current[name] = json.loads(value) if name == "data" else value
    return events, comments


# ---------------------------------------------------------------- POST /v1/tasks


async def test_a_task_is_published_and_answered_with_its_urls(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(topic_prefix="p1.", instance="gateway-3")
    response = await gw.client.post("/v1/tasks", json={"task_id": "t-1", "goal": "say hi"})
    assert response.status == 202
    assert await response.json() == {
        "task_id": "t-1",
        "status_url": "/v1/tasks/t-1",
        "events_url": "/v1/tasks/t-1/events",
    }
    assert response.headers["Location"] == "/v1/tasks/t-1"
    ((topic, envelope),) = gw.publisher.sent
    assert topic == "p1.synod.tasks"
    assert envelope.type == "TaskSubmitted"
    assert envelope.task_id == "t-1"
    assert envelope.body.goal == "say hi"
    assert (envelope.sender.role, envelope.sender.instance) == ("gateway", "gateway-3")
    # The short form's message id: the same task id is the same message everywhere.
    short = Codec().decode(b'{"task_id": "t-1", "goal": "say hi"}')
    assert envelope.message_id == short.message_id
    # Read-your-writes: the gateway knows the task before the planner logs it.
    status = await (await gw.client.get("/v1/tasks/t-1")).json()
    assert (status["state"], status["goal"]) == ("submitted", "say hi")


async def test_a_task_id_is_generated_when_absent(gateway: Gateway) -> None:
    status, body = await gateway.submit({"goal": "g", "reviewers": 5, "policy": "unanimity"})
    assert status == 202
    assert len(body["task_id"]) == 32
    assert uuid.UUID(hex=body["task_id"])
    ((_, envelope),) = gateway.publisher.sent
    assert envelope.task_id == body["task_id"]
    assert (envelope.body.reviewers, envelope.body.policy) == (5, "unanimity")


async def test_resubmitting_a_task_is_one_task_and_a_different_one_conflicts(
    gateway: Gateway,
) -> None:
    assert (await gateway.submit({"task_id": "t", "goal": "g"}))[0] == 202
    assert (await gateway.submit({"task_id": "t", "goal": "g"}))[0] == 202
    assert len(gateway.publisher.sent) == 1
    status, body = await gateway.submit({"task_id": "t", "goal": "other"})
    assert status == 409
    assert body["error"]["code"] == "conflict"
    assert body["error"]["details"] == {"task_id": "t", "fields": ["goal"]}
    status, body = await gateway.submit({"task_id": "t", "goal": "g", "reviewers": 5})
    assert status == 409
    assert body["error"]["details"]["fields"] == ["reviewers"]


async def test_a_task_known_from_the_log_conflicts_too(gateway: Gateway) -> None:
    for offset, e in enumerate(task_log("t-log")):
        gateway.feed.apply(e, offset)
    status, body = await gateway.submit({"task_id": "t-log", "goal": "something else"})
    assert status == 409
    assert "goal" in body["error"]["message"]
    assert gateway.publisher.sent == []


async def test_malformed_json_is_400_with_where(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/tasks",
        data=b'{"goal": "x",\n "reviewers": }',
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "malformed_json"
    assert (error["details"]["line"], error["details"]["column"]) == (2, 15)
    assert "line 2 column 15" in error["message"]
    empty = await gateway.client.post("/v1/tasks", data=b"")
    assert empty.status == 400
    latin1 = await gateway.client.post("/v1/tasks", data=b'{"goal": "\xe9"}')
    assert latin1.status == 400
    assert gateway.publisher.sent == []


async def test_a_missing_goal_is_422_naming_goal_and_what_to_send(gateway: Gateway) -> None:
    status, body = await gateway.submit({"task_id": "t"})
    assert status == 422
    error = body["error"]
    assert error["code"] == "invalid_task"
    (field,) = error["details"]["fields"]
    assert field["field"] == "goal"
    assert field["type"] == "missing"
    assert field["fix"] == "add goal: a string of 1 to 20000 characters"
    assert error["message"].startswith("invalid task: goal: Field required")


@pytest.mark.parametrize(
    ("doc", "field", "fix"),
    [
        ({"goal": ""}, "goal", "goal must be a string of 1 to 20000 characters"),
        (
            {"goal": "g", "reviewers": 40},
            "reviewers",
            "reviewers must be an integer >= 1 and <= 31",
        ),
        (
            {"goal": "g", "policy": "plurality"},
            "policy",
            'policy must be one of "majority", "supermajority", "unanimity", "confidence", '
            '"adaptive"',
        ),
        (
            {"goal": "g", "deadline_s": 0},
            "deadline_s",
            "deadline_s must be a number > 0 and <= 86400",
        ),
        ({"goal": "g", "plan": [{"role": "coder"}]}, "plan[0].step_id", "add plan[0].step_id"),
        ({"goal": "g", "labels": {"team": 3}}, "labels.team", "labels.team must be a string"),
        ({"goal": "g", "task_id": 42}, "task_id", "leave it out to have one generated"),
        ({"goal": "g", "task_id": ""}, "task_id", "leave it out to have one generated"),
        ({"goal": "g", "reviwers": 5}, "reviwers", "did you mean 'reviewers'?"),
    ],
)
async def test_schema_violations_are_422_naming_the_field_and_the_fix(
    gateway: Gateway, doc: dict[str, Any], field: str, fix: str
) -> None:
    status, body = await gateway.submit(doc)
    assert status == 422, body
    fields = body["error"]["details"]["fields"]
    assert [f["field"] for f in fields] == [field]
    assert fields[0]["fix"].startswith(fix), fields[0]["fix"]
    assert gateway.publisher.sent == []


async def test_a_task_must_be_an_object(gateway: Gateway) -> None:
    status, body = await gateway.submit(["goal"])
    assert status == 422
    assert "a task is a JSON object, not a list" in body["error"]["message"]


async def test_an_unreachable_broker_is_503_and_safe_to_retry(gateway: Gateway) -> None:
    gateway.publisher.fail = BrokerError("not connected to Kafka yet")
    response = await gateway.client.post("/v1/tasks", json={"task_id": "t", "goal": "g"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"]["code"] == "broker_unavailable"
    assert "t" not in gateway.feed.index  # not accepted, so not known
    gateway.publisher.fail = None
    assert (await gateway.submit({"task_id": "t", "goal": "g"}))[0] == 202


async def test_a_slow_broker_is_503_after_the_publish_bound(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(publish_timeout_s=0.05)

    async def hang(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(10)

    gw.publisher.publish = hang  # type: ignore[method-assign]
    status, _body = await gw.submit({"goal": "g"})
    assert status == 503


async def test_too_large_is_413(gateway: Gateway) -> None:
    response = await gateway.client.post("/v1/tasks", data=b"x" * 1_100_000)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"
    gateway.publisher.fail = EncodeError("oversized", "2000000 bytes; the limit is 1000000")
    status, _body = await gateway.submit({"goal": "g"})
    assert status == 413


async def test_a_w3c_traceparent_header_is_carried_into_the_envelope(gateway: Gateway) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await gateway.submit({"goal": "g"}, headers={"traceparent": parent, "tracestate": "a=b"})
    await gateway.submit({"goal": "h"}, headers={"traceparent": "garbage"})
    (_, traced), (_, untraced) = gateway.publisher.sent
    assert (traced.trace.traceparent, traced.trace.tracestate) == (parent, "a=b")
    assert untraced.trace.traceparent == ""


# ---------------------------------------------------------------- GET /v1/tasks/{id}


async def test_status_is_the_task_view_and_unknown_is_404(gateway: Gateway) -> None:
    for offset, e in enumerate(task_log("a/b c")):
        gateway.feed.apply(e, offset)
    response = await gateway.client.get("/v1/tasks/a%2Fb%20c")
    assert response.status == 200
    doc = await response.json()
    assert doc["task_id"] == "a/b c"
    assert doc["state"] == "completed"
    assert doc["result"] == "done"
    assert [e["type"] for e in doc["events"]] == [
        "TaskSubmitted",
        "PlanProposed",
        "StepCompleted",
        "Decision",
        "TaskCompleted",
    ]
    missing = await gateway.client.get("/v1/tasks/nope")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"


async def test_routing_errors_are_json_too(gateway: Gateway) -> None:
    response = await gateway.client.get("/v2/nothing")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    response = await gateway.client.delete("/v1/tasks")
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert (await response.json())["error"]["code"] == "method_not_allowed"


# ---------------------------------------------------------------- auth


async def test_bearer_tokens_guard_the_api_but_not_health(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(tokens=["s3cret", "other"])
    missing = await gw.client.post("/v1/tasks", json={"goal": "g"})
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="synod"'
    assert (await missing.json())["error"]["code"] == "unauthorized"
    wrong = await gw.client.get("/v1/tasks/x", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    basic = await gw.client.get("/v1/tasks/x", headers={"Authorization": "Basic czNjcmV0"})
    assert basic.status == 401
    ok = await gw.client.post(
        "/v1/tasks", json={"goal": "g"}, headers={"Authorization": "Bearer other"}
    )
    assert ok.status == 202
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await gw.client.get(path)).status == 200, path


async def test_without_tokens_there_is_no_auth(gateway: Gateway) -> None:
    assert (await gateway.submit({"goal": "g"}))[0] == 202


# ---------------------------------------------------------------- health and metrics


async def test_health_readiness_and_metrics(make_gateway: MakeGateway) -> None:
    state = {"ok": False}

    async def ready() -> tuple[bool, dict[str, Any]]:
        return state["ok"], {"publisher_started": state["ok"]}

    gw = await make_gateway(ready=ready)
    assert await (await gw.client.get("/healthz")).json() == {"status": "ok"}
    not_ready = await gw.client.get("/readyz")
    assert not_ready.status == 503
    assert await not_ready.json() == {
        "status": "not_ready",
        "checks": {"publisher_started": False},
    }
    state["ok"] = True
    assert (await gw.client.get("/readyz")).status == 200
    await gw.submit({"goal": "g"})
    await gw.submit({})
    metrics = await gw.client.get("/metrics")
    text = await metrics.text()
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert 'synod_gateway_requests_total{outcome="accepted"}' in text
    assert 'synod_gateway_requests_total{outcome="invalid"}' in text
    assert "synod_gateway_request_duration_seconds_bucket" in text
    assert "/healthz" not in text


# ---------------------------------------------------------------- GET /v1/tasks/{id}/events


async def test_the_stream_replays_then_follows_live_and_closes_on_the_outcome(
    gateway: Gateway,
) -> None:
    log = task_log("t-sse")
    for offset, e in enumerate(log[:2]):
        gateway.feed.apply(e, offset)
    response = await gateway.client.get("/v1/tasks/t-sse/events")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    reading = asyncio.create_task(read_sse(response))
    await wait_until_async(lambda: gateway.feed.watching == 1, what="a watcher", timeout_s=5)
    for offset, e in enumerate(log[2:], start=2):
        gateway.feed.apply(e, offset)
        gateway.feed.apply(e, offset)  # a duplicate is not sent twice
    events, _ = await reading
    assert [e["event"] for e in events] == [e.type for e in log]
    assert [e["id"] for e in events] == [e.message_id for e in log]
    assert [e["data"]["message_id"] for e in events] == [e.message_id for e in log]
    assert Codec().decode(json.dumps(events[2]["data"]).encode()) == log[2]
    assert gateway.feed.watching == 0


async def test_a_finished_task_is_replayed_and_closed(gateway: Gateway) -> None:
    log = task_log("done")
    for offset, e in enumerate(log):
        gateway.feed.apply(e, offset)
    events, _ = await read_sse(await gateway.client.get("/v1/tasks/done/events"))
    assert [e["event"] for e in events] == [e.type for e in log]


async def test_a_reconnecting_client_resumes_after_last_event_id(gateway: Gateway) -> None:
    log = task_log("again")
    for offset, e in enumerate(log):
        gateway.feed.apply(e, offset)
    response = await gateway.client.get(
        "/v1/tasks/again/events", headers={"Last-Event-ID": log[2].message_id}
    )
    events, _ = await read_sse(response)
    assert [e["id"] for e in events] == [e.message_id for e in log[3:]]


async def test_keep_alive_comments_while_nothing_happens(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(keepalive_s=0.02)
    log = task_log("quiet")
    gw.feed.apply(log[0], 0)
    comments: list[str] = []
    response = await gw.client.get("/v1/tasks/quiet/events")
    reading = asyncio.create_task(read_sse(response, comments))
    await wait_until_async(lambda: len(comments) >= 2, what="two comments", timeout_s=5)
    gw.feed.apply(log[-1], 1)
    events, _ = await reading
    assert [e["event"] for e in events] == ["TaskSubmitted", "TaskCompleted"]
    assert len(comments) >= 2
    assert set(comments) == {": keep-alive"}


async def test_an_outcome_read_from_results_waits_for_the_log(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(outcome_grace_s=30)
    log = task_log("racy")
    gw.feed.apply(log[0], 0)
    gw.feed.apply(log[-1])  # from synod.results, before the log caught up
    reading = asyncio.create_task(read_sse(await gw.client.get("/v1/tasks/racy/events")))
    await wait_until_async(lambda: gw.feed.watching == 1, what="a watcher", timeout_s=5)
    for offset, e in enumerate(log[1:], start=1):
        gw.feed.apply(e, offset)
    events, _ = await reading
    assert [e["event"] for e in events] == [e.type for e in log]


async def test_an_outcome_never_logged_is_sent_after_the_grace(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(outcome_grace_s=0.05)
    log = task_log("results-only")
    gw.feed.apply(log[0], 0)
    gw.feed.apply(log[-1])
    events, _ = await read_sse(await gw.client.get("/v1/tasks/results-only/events"))
    assert [e["event"] for e in events] == ["TaskSubmitted", "TaskCompleted"]


async def test_streams_end_when_the_gateway_shuts_down(gateway: Gateway) -> None:
    gateway.feed.apply(task_log("open")[0], 0)
    reading = asyncio.create_task(read_sse(await gateway.client.get("/v1/tasks/open/events")))
    await wait_until_async(lambda: gateway.feed.watching == 1, what="a watcher", timeout_s=5)
    gateway.feed.close()
    events, _ = await reading
    assert [e["event"] for e in events] == ["TaskSubmitted"]


async def test_a_stream_of_an_unknown_task_is_404(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/tasks/nope/events")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
