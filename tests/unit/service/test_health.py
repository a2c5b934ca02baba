"""The health endpoints every service mounts: alive, ready (with why not), metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter

from synod.service.health import HEALTH_PATHS, add_health_routes, always_ready, health_app


async def _client(app: web.Application) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_alive_and_ready() -> None:
    client = await _client(health_app(always_ready))
    try:
        alive = await client.get("/healthz")
        assert (alive.status, await alive.json()) == (200, {"status": "ok"})
        ready = await client.get("/readyz")
        assert (ready.status, await ready.json()) == (200, {"status": "ready", "checks": {}})
    finally:
        await client.close()


async def test_not_ready_is_503_with_the_details() -> None:
    async def ready() -> tuple[bool, dict[str, Any]]:
        return False, {"broker_reachable": False, "assigned_partitions": 0, "since": object()}

    client = await _client(health_app(ready))
    try:
        response = await client.get("/readyz")
        assert response.status == 503
        doc = await response.json()
        assert doc["status"] == "not_ready"
        assert doc["checks"]["broker_reachable"] is False
        assert doc["checks"]["since"].startswith("<object")  # unusual values never break it
    finally:
        await client.close()


async def test_a_failing_or_hanging_check_is_not_ready() -> None:
    async def broken() -> tuple[bool, dict[str, Any]]:
        raise RuntimeError("boom")

    never = asyncio.Event()

    async def hanging() -> tuple[bool, dict[str, Any]]:
        await never.wait()
        return True, {}

    app = web.Application()
    sub = health_app(hanging, ready_timeout_s=0.05)
    add_health_routes(app, broken)
    client, slow = await _client(app), await _client(sub)
    try:
        response = await client.get("/readyz")
        assert response.status == 503
        assert "boom" in (await response.json())["checks"]["error"]
        response = await slow.get("/readyz")
        assert response.status == 503
        assert "took over 0.05s" in (await response.json())["checks"]["error"]
    finally:
        await client.close()
        await slow.close()


async def test_metrics_in_the_format_the_scraper_asks_for() -> None:
    registry = CollectorRegistry()
    counter = Counter("synod_test_things_total", "things", ["outcome"], registry=registry)
    counter.labels(outcome="ok").inc(3)
    client = await _client(health_app(always_ready, registry=registry))
    try:
        text = await client.get("/metrics")
        assert text.headers["Content-Type"].startswith("text/plain")
        assert 'synod_test_things_total{outcome="ok"} 3.0' in await text.text()
        open_metrics = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert open_metrics.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await open_metrics.text()).rstrip().endswith("# EOF")
    finally:
        await client.close()


def test_the_health_paths() -> None:
    assert frozenset({"/healthz", "/readyz", "/metrics"}) == HEALTH_PATHS
