"""The gateway's OpenAPI document: every route in it, valid OpenAPI 3.1, current on disk."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from synod.roles.gateway import openapigen
from synod.roles.gateway.app import create_app
from synod.roles.gateway.openapi import OPERATIONS, document
from synod.roles.gateway.view import TaskFeed


class _Publisher:
    async def publish(self, *args: Any, **kwargs: Any) -> None:
        return None


def _app(**options: Any) -> web.Application:
    return create_app(_Publisher(), TaskFeed(), **options)


def _routes(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and isinstance(path, str):
            out.add((route.method, path))
    return out


def test_every_route_of_the_app_is_documented_and_nothing_else() -> None:
    app = _app()
    doc = document(app)
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == _routes(app)
    # Each hand-written description belongs to a route the app has (none went stale).
    assert set(OPERATIONS) <= _routes(app)


def test_a_route_added_later_is_in_the_document_by_construction() -> None:
    app = _app()

    async def escalations(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/v1/later/{thing_id}", escalations)
    operation = document(app)["paths"]["/v1/later/{thing_id}"]["get"]
    assert operation["parameters"][0]["name"] == "thing_id"
    assert {"200", "500"} <= set(operation["responses"])


def test_the_document_is_valid_openapi_3_1_with_and_without_tokens() -> None:
    validate(document(_app()))
    with_tokens = document(_app(tokens=["t"]), tokens=True)
    validate(with_tokens)
    assert "401" in with_tokens["paths"]["/v1/tasks"]["post"]["responses"]
    assert with_tokens["paths"]["/healthz"]["get"]["security"] == []


def test_every_error_answer_has_the_conventional_body_and_its_codes() -> None:
    doc = document(_app())
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if int(status) < 400 or path in ("/readyz",):
                    continue
                schema = response["content"]["application/json"]["schema"]
                error = schema["properties"]["error"]
                assert error["required"] == ["code", "message", "details"], (method, path)
                assert error["properties"]["code"]["enum"], (method, path, status)


def test_the_checked_in_file_is_current() -> None:
    assert openapigen.path().read_text() == openapigen.text(), "run `make schemas`"


async def test_the_gateway_serves_its_document_without_a_token() -> None:
    app = _app(tokens=["secret"])
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/openapi.json")
        assert response.status == 200
        served = await response.json()
        denied = await client.get("/v1/tasks/x")
        assert denied.status == 401
    assert served == json.loads(json.dumps(document(app, tokens=True)))
