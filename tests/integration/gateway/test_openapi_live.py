"""Schemathesis against a live gateway on the real broker, from its own /openapi.json.

Generated and malformed requests to every documented operation: no 5xx, every
status one the document lists, every body (errors included) the documented
shape, every content type the documented one. The event streams are left out:
a stream of a task nobody works on stays open by design.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.polling import wait_until_async

from synod.roles.gateway.openapigen import path as openapi_file
from synod.roles.gateway.server import Gateway
from synod.roles.gateway.settings import GatewaySettings
from synod.settings import KafkaSettings
from synod.transport.admin import ensure_topics

TOKEN = "schemathesis-token"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "response_headers_conformance",
)


async def _ready(http: aiohttp.ClientSession, url: str) -> bool:
    async with http.get(f"{url}/readyz") as response:
        return response.status == 200


@pytest.fixture
async def gateway(bootstrap: str) -> Any:
    prefix = f"oa{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, prefix=prefix, partitions=3)
    gw = Gateway(
        GatewaySettings(gateway_port=0, heartbeat_interval_s=0.5, api_tokens=[TOKEN]),
        KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix),
    )
    await gw.start()
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until_async(lambda: _ready(http, gw.url), what="readyz", timeout_s=30)
        yield gw
    finally:
        await gw.stop()


async def test_the_served_document_is_the_route_tables(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/openapi.json") as response,
    ):
        assert response.status == 200  # no token: the document holds no data
        served = await response.json()
    assert served["security"] == [{"bearer": []}]
    assert served["paths"]["/v1/tasks"]["post"]["responses"]["401"]
    assert served["paths"]["/healthz"]["get"]["security"] == []
    checked_in = json.loads(openapi_file().read_text())
    assert served["paths"].keys() == checked_in["paths"].keys()


async def test_schemathesis_finds_no_5xx_and_only_documented_answers(
    gateway: Gateway, tmp_path: Path
) -> None:
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{gateway.url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--exclude-path-regex",
        "/events$|^/v1/streams/",
        "--max-examples",
        "25",
        "--seed",
        "23",
        "--request-timeout",
        "20",
        "--max-time",
        "20",
        "--workers",
        "1",
        "--no-color",
        "--warnings",
        "off",
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=240)
    text = out.decode(errors="replace")
    print(text)
    assert proc.returncode == 0, text[-6000:]
    assert "passed" in text
