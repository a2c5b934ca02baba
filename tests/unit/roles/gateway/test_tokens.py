"""The gateway's callers: hashed tokens, a principal each, a rate per token, limits, headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from synod.core.taskview import TaskIndex
from synod.errors import ConfigError
from synod.roles.gateway.app import create_app
from synod.roles.gateway.tokens import (
    RateLimiter,
    TokenBook,
    hashed_entry,
    parse_entries,
    token_digest,
)
from synod.roles.gateway.view import TaskFeed
from synod.wire import ContentType, Envelope


class SlowPublisher:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.sent: list[Envelope[Any]] = []

    async def publish(
        self, topic: str, envelope: Envelope[Any], content_type: ContentType = "avro"
    ) -> None:
        await asyncio.sleep(self.delay_s)
        self.sent.append(envelope)


Make = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    clients: list[TestClient[Any, Any]] = []

    async def build(delay_s: float = 0.0, **options: Any) -> TestClient[Any, Any]:
        app = create_app(SlowPublisher(delay_s), TaskFeed(TaskIndex()), **options)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_entries_keep_only_digests_and_name_a_principal_each() -> None:
    book = TokenBook.from_settings(
        [hashed_entry("alice", "a-token"), "bob=b-token", "legacy-token"]
    )
    assert book.principal_for("a-token") == "alice"
    assert book.principal_for("b-token") == "bob"
    assert book.principal_for("legacy-token") == f"token-{token_digest('legacy-token').hex()[:8]}"
    assert book.principal_for("a-token ") is None
    assert book.principal_for("") is None
    stored = repr(book.entries)
    for secret in ("a-token", "b-token", "legacy-token"):
        assert secret not in stored


def test_a_bad_entry_is_named_by_position_not_by_its_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_entries(["ok=fine", "not a principal!=hunter2-secret"])
    assert "entry 2" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(ConfigError, match="same principal"):
        parse_entries(["a=x", "a=y"])


def test_the_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2.0, burst=2.0, clock=lambda: now[0])
    assert limiter.admit("p") == 0.0
    assert limiter.admit("p") == 0.0
    assert limiter.admit("p") == pytest.approx(0.5)
    assert limiter.admit("q") == 0.0  # another principal has its own bucket
    now[0] = 0.5
    assert limiter.admit("p") == 0.0


async def test_a_token_over_its_rate_gets_429_with_retry_after(make: Make) -> None:
    client = await make(tokens=["alice=a", "bob=b"], rate_per_s=0.01, rate_burst=2)
    for _ in range(2):
        assert (await client.get("/v1/tasks/x", headers=bearer("a"))).status == 404
    over = await client.get("/v1/tasks/x", headers=bearer("a"))
    assert over.status == 429
    assert int(over.headers["Retry-After"]) >= 1
    assert (await over.json())["error"]["code"] == "rate_limited"
    # The other token is not slowed by alice's.
    assert (await client.get("/v1/tasks/x", headers=bearer("b"))).status == 404
    # A wrong token never reaches the bucket (it is 401, not 429).
    assert (await client.get("/v1/tasks/x", headers=bearer("zzz"))).status == 401


async def test_no_cors_unless_configured(make: Make) -> None:
    plain = await make()
    answer = await plain.get("/v1/tasks/x", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in answer.headers
    preflight = await plain.options("/v1/tasks", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    configured = await make(cors_origins=["https://ops.example"])
    ok = await configured.options("/v1/tasks", headers={"Origin": "https://ops.example"})
    assert ok.status == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ops.example"
    other = await configured.get("/v1/tasks/x", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_console_pages_carry_security_headers(make: Make) -> None:
    client = await make()
    page = await client.get("/console/")
    assert page.status == 200
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"


async def test_a_request_over_its_time_limit_is_answered_503(make: Make) -> None:
    client = await make(delay_s=5.0, request_timeout_s=0.2, publish_timeout_s=10.0)
    answer = await client.post("/v1/tasks", json={"goal": "g"})
    assert answer.status == 503
    assert (await answer.json())["error"]["code"] == "timeout"


async def test_a_body_over_the_limit_is_413(make: Make) -> None:
    client = await make()
    answer = await client.post("/v1/tasks", data=b"x" * (1_048_576 + 1))
    assert answer.status == 413
