"""The health endpoints every Synod process serves (CONVENTIONS: HTTP).

- `GET /healthz`: the process is alive and its event loop answers. Never
  depends on Kafka: a broker outage must not get every pod restarted.
- `GET /readyz`: the process can do its work (broker reachable, assignments
  held), as the service's own `ready` check says; 200 or 503 with the details.
- `GET /metrics`: Prometheus exposition of a registry (the default one unless
  told otherwise), in the format the scraper asks for.

Mount them on an existing application with `add_health_routes`, or serve them
alone with `health_app`. Requests to these paths should be left out of request
metrics and authentication (`HEALTH_PATHS`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

ReadyCheck = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]

HEALTH_PATHS: frozenset[str] = frozenset({"/healthz", "/readyz", "/metrics"})

# A readiness probe that hangs is worse than one that fails: Kubernetes would
# time out anyway, without the reason.
DEFAULT_READY_TIMEOUT_S = 5.0


def add_health_routes(
    app: web.Application,
    ready: ReadyCheck,
    *,
    registry: CollectorRegistry = REGISTRY,
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
) -> None:
    """Add GET /healthz, /readyz and /metrics to `app`."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(ready_timeout_s):
                ok, details = await ready()
        except TimeoutError:
            ok, details = False, {"error": f"readiness check took over {ready_timeout_s:g}s"}
        except Exception as exc:  # a failing check means not ready, not a 500
            ok, details = False, {"error": f"readiness check failed: {exc!r}"[:500]}
        body = {"status": "ready" if ok else "not_ready", "checks": details}
        return web.json_response(body, status=200 if ok else 503, dumps=_dumps)

    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        # Collecting walks every metric; off the loop it cannot stall other requests.
        data = await asyncio.to_thread(encoder, registry)
        return web.Response(body=data, headers={"Content-Type": content_type})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


def health_app(
    ready: ReadyCheck,
    *,
    registry: CollectorRegistry = REGISTRY,
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
) -> web.Application:
    """An application serving only the health endpoints (for services without HTTP)."""
    app = web.Application()
    add_health_routes(app, ready, registry=registry, ready_timeout_s=ready_timeout_s)
    return app


async def always_ready() -> tuple[bool, dict[str, Any]]:
    """A readiness check for processes with nothing to wait for."""
    return True, {}


def _dumps(doc: Any) -> str:
    # Details come from services (offsets, timestamps); never fail a probe on them.
    return json.dumps(doc, default=str)


__all__ = [
    "DEFAULT_READY_TIMEOUT_S",
    "HEALTH_PATHS",
    "ReadyCheck",
    "add_health_routes",
    "always_ready",
    "health_app",
]
