"""The gateway and the client CLI on the real broker: tasks in as Avro, status and
event streams out of synod.task-events and synod.results, auth, graceful stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from tests.polling import wait_until_async

from synod.roles.gateway.server import Gateway
from synod.roles.gateway.settings import GatewaySettings
from synod.settings import KafkaSettings
from synod.transport import Publisher
from synod.transport.admin import ensure_topics
from synod.transport.topics import (
    HEARTBEATS,
    RESULTS,
    TASK_EVENTS,
    TASKS,
    TopicSpec,
    topic_name,
)
from synod.wire import (
    Body,
    Candidate,
    Codec,
    Decision,
    Envelope,
    Heartbeat,
    PlanProposed,
    PlanStep,
    Sender,
    StepCompleted,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    Usage,
    VoteRequested,
)

PLANNER = Sender(role="planner", instance="planner-0")
CODEC = Codec()


@pytest.fixture(scope="module")
async def prefix(bootstrap: str) -> str:
    name = f"gw{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, prefix=name, partitions=3)
    return name


def _topic(spec: TopicSpec, prefix: str) -> str:
    return topic_name(spec, prefix)


StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(bootstrap: str, prefix: str) -> AsyncIterator[StartGateway]:
    started: list[Gateway] = []

    async def start(**settings: Any) -> Gateway:
        gateway = Gateway(
            GatewaySettings(gateway_port=0, heartbeat_interval_s=0.5, **settings),
            KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix),
        )
        await gateway.start()
        started.append(gateway)
        async with aiohttp.ClientSession() as http:
            await wait_until_async(
                lambda: _ready(http, gateway.url), what=f"{gateway.url}/readyz", timeout_s=30
            )
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def _ready(http: aiohttp.ClientSession, url: str) -> bool:
    async with http.get(f"{url}/readyz") as response:
        return response.status == 200


async def _read_topic(
    bootstrap: str, topic: str, until: Callable[[list[Any]], bool], timeout_s: float = 30
) -> list[Any]:
    """Records of a topic from the beginning, until `until(records)` holds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(timeout_s):
            while not until(records):
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


def _env(body: Body, task_id: str, sender: Sender = PLANNER) -> Envelope[Any]:
    return Envelope.new(body, sender=sender, task_id=task_id)


def _run_of(task_id: str, outcome: Body) -> list[Envelope[Any]]:
    """What a planner, two workers and consensus log for a task, after its submission."""
    usage = Usage(model="sim", calls=1, input_tokens=10, output_tokens=20, cost_usd=0.001)
    return [
        _env(PlanProposed(plan_id="p1", steps=[PlanStep(step_id="s1", title="do it")]), task_id),
        _env(StepRequested(step_id="s1", plan_id="p1", role="coder"), task_id),
        _env(
            StepCompleted(step_id="s1", output="print('hi')", usage=usage, duration_s=0.5),
            task_id,
            Sender(role="coder", instance="coder-0"),
        ),
        _env(
            VoteRequested(
                proposal_id=f"{task_id}/answer",
                candidates=[Candidate(candidate_id="c1", content="print('hi')")],
                electorate=["reviewer-0", "reviewer-1", "reviewer-2"],
            ),
            task_id,
        ),
        _env(
            Decision(
                decision_id=f"{task_id}/answer/decision",
                proposal_id=f"{task_id}/answer",
                ballot=1,
                outcome="c1",
                tally={"c1": 3.0},
                quorum=2,
                votes_counted=3,
            ),
            task_id,
            Sender(role="consensus", instance="consensus-0"),
        ),
        _env(outcome, task_id),
    ]


async def _play(
    bootstrap: str, prefix: str, submitted: Envelope[Any], run: list[Envelope[Any]]
) -> None:
    """Act as the pipeline: log the submission, then the run; the outcome goes to
    synod.results first (so readers see it ahead of the log) and then to the log."""
    async with Publisher(bootstrap) as publisher:
        await publisher.publish(_topic(TASK_EVENTS, prefix), submitted)
        for envelope in run[:-1]:
            await publisher.publish(_topic(TASK_EVENTS, prefix), envelope)
        await publisher.publish(_topic(RESULTS, prefix), run[-1], "json")
        await publisher.publish(_topic(TASK_EVENTS, prefix), run[-1])


async def _sse(response: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if current:
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = json.loads(value) if name == "data" else value
    return events


# ---------------------------------------------------------------- submitting


async def test_a_posted_task_is_on_synod_tasks_as_avro(
    bootstrap: str, prefix: str, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(instance="gateway-7")
    task_id = f"t-{uuid.uuid4().hex[:8]}"
    async with http.post(
        f"{gateway.url}/v1/tasks", json={"task_id": task_id, "goal": "say hi", "reviewers": 5}
    ) as response:
        assert response.status == 202
        assert (await response.json())["status_url"] == f"/v1/tasks/{task_id}"

    def found(records: list[Any]) -> bool:
        return any(r.key == task_id.encode() for r in records)

    records = await _read_topic(bootstrap, _topic(TASKS, prefix), found)
    (record,) = [r for r in records if r.key == task_id.encode()]
    assert record.value[:2] == b"\xc3\x01"  # Avro single-object encoding
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/vnd.apache.avro+binary"
    assert headers["type"] == b"TaskSubmitted"
    envelope = CODEC.decode(record.value)
    assert isinstance(envelope.body, TaskSubmitted)
    assert (envelope.task_id, envelope.body.goal, envelope.body.reviewers) == (task_id, "say hi", 5)
    assert (envelope.sender.role, envelope.sender.instance) == ("gateway", "gateway-7")
    assert headers["message-id"] == envelope.message_id.encode()


async def test_bad_requests_name_what_is_wrong(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway()
    async with http.post(f"{gateway.url}/v1/tasks", data=b"{not json") as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "malformed_json"
    async with http.post(f"{gateway.url}/v1/tasks", json={"reviewers": 3}) as response:
        assert response.status == 422
        error = (await response.json())["error"]
        assert [f["field"] for f in error["details"]["fields"]] == ["goal"]
        assert "goal" in error["message"]


async def test_tokens_guard_the_api_and_leave_health_open(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    guarded = await start_gateway(api_tokens="alpha, beta")
    open_one = await start_gateway()
    async with http.post(f"{guarded.url}/v1/tasks", json={"goal": "g"}) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    bad = {"Authorization": "Bearer gamma"}
    async with http.post(f"{guarded.url}/v1/tasks", json={"goal": "g"}, headers=bad) as response:
        assert response.status == 401
    good = {"Authorization": "Bearer beta"}
    async with http.post(f"{guarded.url}/v1/tasks", json={"goal": "g"}, headers=good) as response:
        assert response.status == 202
    for path in ("/healthz", "/readyz", "/metrics"):
        async with http.get(f"{guarded.url}{path}") as response:
            assert response.status == 200, path
    async with http.post(f"{open_one.url}/v1/tasks", json={"goal": "g"}) as response:
        assert response.status == 202


async def test_readiness_reports_the_broker_and_the_view(
    bootstrap: str, prefix: str, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(instance="gateway-ready")
    async with http.get(f"{gateway.url}/readyz") as response:
        checks = (await response.json())["checks"]
    assert checks["publisher_started"]
    assert checks["broker_reachable"]
    # 3 each of task-events and results, and of what the console reads: votes,
    # heartbeats, supervisor, dlq, dlq.replays.
    assert checks["view_assigned_partitions"] == 21

    def beat(records: list[Any]) -> bool:
        return any(r.key == b"gateway-ready" for r in records)

    records = await _read_topic(bootstrap, _topic(HEARTBEATS, prefix), beat)
    heartbeat = CODEC.decode(next(r.value for r in records if r.key == b"gateway-ready"))
    assert isinstance(heartbeat.body, Heartbeat)
    assert heartbeat.body.role == "gateway"


# ---------------------------------------------------------------- status and events


async def test_status_and_the_event_stream_follow_the_task_log(
    bootstrap: str, prefix: str, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway()
    task_id = f"t-{uuid.uuid4().hex[:8]}"
    async with http.post(
        f"{gateway.url}/v1/tasks", json={"task_id": task_id, "goal": "fizzbuzz"}
    ) as response:
        urls = await response.json()
    known = gateway.feed.index.get(task_id)
    assert known is not None
    submitted = known.envelopes()[0]
    run = _run_of(task_id, TaskCompleted(result="print('hi')", plan_id="p1", duration_s=3.0))
    async with http.get(f"{gateway.url}{urls['events_url']}") as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream"
        reading = asyncio.create_task(_sse(stream))
        await _play(bootstrap, prefix, submitted, run)
        async with asyncio.timeout(30):
            events = await reading  # ends by itself after TaskCompleted
    expected = [submitted, *run]
    assert [e["event"] for e in events] == [e.type for e in expected]
    assert [e["data"]["message_id"] for e in events] == [e.message_id for e in expected]
    assert CODEC.decode(json.dumps(events[2]["data"]).encode()) == run[1]

    async with http.get(f"{gateway.url}{urls['status_url']}") as response:
        status = await response.json()
    assert status["state"] == "completed"
    assert status["result"] == "print('hi')"
    assert [(s["step_id"], s["status"]) for s in status["steps"]] == [("s1", "completed")]
    assert status["decision"]["outcome"] == "c1"
    assert status["votes"][0]["electorate"] == ["reviewer-0", "reviewer-1", "reviewer-2"]
    assert [e["type"] for e in status["events"]] == [e.type for e in expected]
    async with http.get(f"{gateway.url}/v1/tasks/{uuid.uuid4().hex}") as response:
        assert response.status == 404


async def test_a_restarted_gateway_rebuilds_the_view_from_the_log(
    bootstrap: str, prefix: str, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    task_id = f"t-{uuid.uuid4().hex[:8]}"
    submitted = _env(
        TaskSubmitted(goal="from elsewhere"), task_id, Sender(role="client", instance="c")
    )
    await _play(bootstrap, prefix, submitted, _run_of(task_id, TaskFailed(reason="no quorum")))
    gateway = await start_gateway()
    await wait_until_async(
        lambda: (view := gateway.feed.index.get(task_id)) is not None and view.terminal,
        what=f"task {task_id} to end in the gateway's view",
        timeout_s=30,
    )
    async with http.get(f"{gateway.url}/v1/tasks/{task_id}") as response:
        status = await response.json()
    assert (status["state"], status["failure"]["reason"]) == ("failed", "no quorum")
    async with http.get(f"{gateway.url}/v1/tasks/{task_id}/events") as stream:
        events = await _sse(stream)
    assert [e["event"] for e in events][-1] == "TaskFailed"
    async with http.post(
        f"{gateway.url}/v1/tasks", json={"task_id": task_id, "goal": "another goal"}
    ) as response:
        assert response.status == 409


async def test_the_process_stops_gracefully_on_sigterm(
    bootstrap: str, prefix: str, http: aiohttp.ClientSession
) -> None:
    env = {
        **os.environ,
        "SYNOD_BOOTSTRAP": bootstrap,
        "SYNOD_TOPIC_PREFIX": prefix,
        "SYNOD_GATEWAY_PORT": "0",
        "SYNOD_INSTANCE": "gateway-proc",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synod_services.gateway",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        url = None
        async with asyncio.timeout(30):
            while url is None:
                line = (await proc.stderr.readline()).decode()
                assert line, "the gateway exited during start-up"
                if line.startswith("gateway listening on "):
                    url = line.split()[-1]
        drain = asyncio.create_task(proc.stderr.read())  # keep the pipe from filling
        await wait_until_async(lambda: _ready(http, url), what=f"{url}/readyz", timeout_s=30)
        async with http.post(f"{url}/v1/tasks", json={"task_id": "open", "goal": "g"}) as r:
            assert r.status == 202
        async with http.get(f"{url}/v1/tasks/open/events") as stream:
            # Headers are in: the stream is open on the server.
            reading = asyncio.create_task(_sse(stream))
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                events = await reading
                assert await proc.wait() == 0
        assert [e["event"] for e in events] == ["TaskSubmitted"]
        await drain
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_help_lists_the_settings() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synod_services.gateway",
        "--help",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    for name in ("SYNOD_BOOTSTRAP", "SYNOD_GATEWAY_PORT", "SYNOD_API_TOKENS"):
        assert name in out.decode()


# ---------------------------------------------------------------- the CLI


async def _synod(*args: str, prefix: str, timeout_s: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synod.cli.main",
        *args,
        env={**os.environ, "SYNOD_TOPIC_PREFIX": prefix},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _fake_planner(bootstrap: str, prefix: str, task_id: str, outcome: Body) -> None:
    """Wait for the task on synod.tasks, then answer it as the pipeline would."""

    def found(records: list[Any]) -> bool:
        return any(r.key == task_id.encode() for r in records)

    records = await _read_topic(bootstrap, _topic(TASKS, prefix), found, timeout_s=60)
    submitted = CODEC.decode(next(r.value for r in records if r.key == task_id.encode()))
    await _play(bootstrap, prefix, submitted, _run_of(task_id, outcome))


async def test_submit_wait_json_exits_0_on_completion(bootstrap: str, prefix: str) -> None:
    task_id = f"cli-{uuid.uuid4().hex[:8]}"
    planner = asyncio.create_task(
        _fake_planner(bootstrap, prefix, task_id, TaskCompleted(result="42", plan_id="p1"))
    )
    code, out, err = await _synod(
        "submit",
        "the answer",
        "--task-id",
        task_id,
        "--wait",
        "--json",
        "--timeout",
        "60",
        "-b",
        bootstrap,
        prefix=prefix,
    )
    await planner
    assert code == 0, err
    view = json.loads(out)
    assert (view["task_id"], view["state"], view["result"]) == (task_id, "completed", "42")
    assert view["request"]["goal"] == "the answer"
    assert [s["status"] for s in view["steps"]] == ["completed"]
    assert view["decision"]["outcome"] == "c1"
    assert view["events"][0]["type"] == "TaskSubmitted"
    assert view["events"][-1]["type"] == "TaskCompleted"
    assert "decision on" in err  # live progress on stderr

    code, out, err = await _synod("status", task_id, "--json", "-b", bootstrap, prefix=prefix)
    assert code == 0, err
    assert json.loads(out)["state"] == "completed"
    code, out, _ = await _synod("status", task_id, "-b", bootstrap, prefix=prefix)
    assert code == 0
    assert "completed" in out
    assert "42" in out
    code, out, _ = await _synod("watch", "--json", "-b", bootstrap, prefix=prefix)
    assert code == 0
    assert task_id in {t["task_id"] for t in json.loads(out)["tasks"]}


async def test_submit_wait_exits_1_on_failure(bootstrap: str, prefix: str) -> None:
    task_id = f"cli-{uuid.uuid4().hex[:8]}"
    planner = asyncio.create_task(
        _fake_planner(bootstrap, prefix, task_id, TaskFailed(reason="reviewers rejected it"))
    )
    code, out, err = await _synod(
        "submit",
        "doomed",
        "--task-id",
        task_id,
        "--wait",
        "--json",
        "--timeout",
        "60",
        "-b",
        bootstrap,
        prefix=prefix,
    )
    await planner
    assert code == 1
    view = json.loads(out)
    assert (view["state"], view["failure"]["reason"]) == ("failed", "reviewers rejected it")
    assert "reviewers rejected it" in err


async def test_submit_wait_times_out_with_1_and_plain_submit_prints_the_id(
    bootstrap: str, prefix: str
) -> None:
    code, out, err = await _synod(
        "submit", "nobody plans", "--wait", "--timeout", "1", "-b", bootstrap, prefix=prefix
    )
    assert code == 1
    assert "did not finish within 1s" in err
    code, out, _ = await _synod("submit", "fire and forget", "-b", bootstrap, prefix=prefix)
    assert code == 0
    assert len(out.strip()) == 32  # the generated task id
    code, out, _ = await _synod(
        "status", uuid.uuid4().hex, "--json", "-b", bootstrap, prefix=prefix
    )
    assert code == 1
    assert "no task" in json.loads(out)["error"]["message"]


async def test_the_cli_reports_an_unreachable_broker_and_bad_usage(prefix: str) -> None:
    code, out, _ = await _synod("submit", "x", "--json", "-b", "127.0.0.1:1", prefix=prefix)
    assert code == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in json.loads(out)["error"]["message"]
    code, _, err = await _synod("submit", "x", "--reviewers", "0", prefix=prefix)
    assert code == 2
    code, _, err = await _synod("submit", "x", "--policy", "plurality", prefix=prefix)
    assert code == 2
    assert "--policy" in err


async def test_without_a_broker_the_gateway_is_alive_not_ready_and_refuses_tasks(
    http: aiohttp.ClientSession,
) -> None:
    gateway = Gateway(GatewaySettings(gateway_port=0), KafkaSettings(bootstrap="127.0.0.1:1"))
    await gateway.start()
    try:
        async with http.get(f"{gateway.url}/healthz") as response:
            assert response.status == 200
        await wait_until_async(
            lambda: gateway.last_error is not None, what="a connect error", timeout_s=30
        )
        async with http.get(f"{gateway.url}/readyz") as response:
            assert response.status == 503
            checks = (await response.json())["checks"]
        assert checks["publisher_started"] is False
        assert "cannot reach Kafka at 127.0.0.1:1" in checks["error"]
        async with http.post(f"{gateway.url}/v1/tasks", json={"goal": "g"}) as response:
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "broker_unavailable"
    finally:
        async with asyncio.timeout(15):
            await gateway.stop()
