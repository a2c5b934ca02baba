"""`synod.client.Escalations` and `synod approvals` against a local HTTP server that
records each request and answers as docs/gateway.md says the gateway does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from synod.cli.approvals import app
from synod.client import Escalations


class _Gateway(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.seen.append(
            {"method": "GET", "path": self.path, "auth": self.headers["Authorization"]}
        )
        if self.path.startswith("/v1/escalations?"):
            self._reply(200, {"escalations": []})
        else:
            self._reply(404, {"error": {"code": "not_found", "message": "no such escalation"}})

    def do_POST(self) -> None:
        doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append({"method": "POST", "path": self.path, "doc": doc})
        if "taken" in self.path:
            message = "answered already: approve by alice"
            self._reply(409, {"error": {"code": "already_answered", "message": message}})
        elif doc["action"] == "reject" and not doc.get("guidance"):
            self._reply(422, {"error": {"code": "invalid_answer", "message": "guidance"}})
        else:
            self._reply(200, {"recorded": True, "escalation": {"escalation_id": "e"}})


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Gateway,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_each_answer_is_the_documented_body(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = gateway
    desk = Escalations(url, token="t0k")
    assert desk.list(state="all", task_id="T1").ok
    assert seen[-1] == {
        "method": "GET",
        "path": "/v1/escalations?state=all&task_id=T1",
        "auth": "Bearer t0k",
    }
    assert desk.approve("task/1#e", candidate_id="c2").doc["recorded"] is True
    assert seen[-1]["path"] == "/v1/escalations/task/1%23e/answer"
    assert seen[-1]["doc"] == {"action": "approve", "candidate_id": "c2"}
    desk.reject("e", guidance="handle []")
    assert seen[-1]["doc"] == {"action": "reject", "guidance": "handle []"}
    desk.raise_budget("e", max_tokens=400_000, on_exhausted="escalate")
    assert seen[-1]["doc"] == {
        "action": "raise_budget",
        "budget": {"max_tokens": 400_000, "on_exhausted": "escalate"},
    }
    desk.cancel("e")
    assert seen[-1]["doc"] == {"action": "cancel"}


def test_refusals_keep_the_gateways_status_and_message(
    gateway: tuple[str, list[dict[str, Any]]],
) -> None:
    url, _ = gateway
    reply = Escalations(url).approve("taken")
    assert (reply.ok, reply.status, reply.message) == (
        False,
        409,
        "answered already: approve by alice",
    )
    assert Escalations(url).get("nope").status == 404


def test_an_unreachable_gateway_says_what_to_set() -> None:
    reply = Escalations("http://127.0.0.1:9", timeout_s=2).list()
    assert reply.status == 0
    assert "cannot reach the gateway at http://127.0.0.1:9" in reply.message
    assert "SYNOD_GATEWAY_URL" in reply.message


def test_the_cli_answers_through_the_client(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = gateway
    runner = CliRunner()
    done = runner.invoke(app, ["approve", "e1", "--url", url])
    assert done.exit_code == 0, done.output
    assert "recorded on the task's log" in done.output
    assert seen[-1]["doc"] == {"action": "approve", "candidate_id": "answer"}
    done = runner.invoke(app, ["approve", "taken", "--url", url])
    assert done.exit_code == 1
    done = runner.invoke(app, ["answer", "e1", "--action", "reject", "--url", url])
    assert done.exit_code == 2
