"""KubernetesRuntime against a recording HTTP server on 127.0.0.1.

The real `kubernetes` client sends real HTTP; the server records method, path,
content type and JSON body and answers like the API server would. Nothing of
ours is mocked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from synod.runtimes import KubernetesRuntime, RuntimeError_


class Recorder(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]]
    status = 201

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.server.calls.append(  # type: ignore[attr-defined]
            {
                "method": self.command,
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "body": json.loads(raw) if raw else None,
            }
        )
        status = self.server.status  # type: ignore[attr-defined]
        payload = json.dumps({"kind": "Status", "code": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_DELETE = do_PATCH = do_GET = _handle

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.calls = []  # type: ignore[attr-defined]
    server.status = 201  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def runtime(server: Any, **kwargs: Any) -> KubernetesRuntime:
    config = client.Configuration()
    config.host = f"http://127.0.0.1:{server.server_address[1]}"
    return KubernetesRuntime.with_client(client.ApiClient(config), "synod", **kwargs)


async def test_restart_evicts_the_pod_with_a_policy_v1_eviction(api: Any) -> None:
    done = await runtime(api).restart("synod-coder-7d9f-abcde", "coder")
    assert done == "evicted pod synod/synod-coder-7d9f-abcde"
    [call] = api.calls
    assert call["method"] == "POST"
    assert call["path"] == "/api/v1/namespaces/synod/pods/synod-coder-7d9f-abcde/eviction"
    assert call["content_type"] == "application/json"
    assert call["body"] == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "synod-coder-7d9f-abcde", "namespace": "synod"},
        "deleteOptions": {"gracePeriodSeconds": 0},
    }


async def test_the_pod_is_the_host_the_heartbeats_named(api: Any) -> None:
    done = await runtime(api).restart("coder-7", "coder", host="rel-synod-coder-5d8c-x2x9q")
    assert done == "evicted pod synod/rel-synod-coder-5d8c-x2x9q"
    assert (
        api.calls[0]["path"] == "/api/v1/namespaces/synod/pods/rel-synod-coder-5d8c-x2x9q/eviction"
    )


async def test_restart_without_eviction_deletes_the_pod(api: Any) -> None:
    api.status = 200
    done = await runtime(api, evict=False).restart("synod-reviewer-0", "reviewer")
    assert done == "deleted pod synod/synod-reviewer-0"
    [call] = api.calls
    assert call["method"] == "DELETE"
    assert call["path"] == "/api/v1/namespaces/synod/pods/synod-reviewer-0?gracePeriodSeconds=0"


async def test_scale_patches_the_deployment_scale_subresource(api: Any) -> None:
    api.status = 200
    await runtime(api).scale("coder", 4)
    [call] = api.calls
    assert call["method"] == "PATCH"
    assert call["path"] == "/apis/apps/v1/namespaces/synod/deployments/synod-coder/scale"
    # Scale is a built-in kind, so the client's default strategic merge patch applies.
    assert call["content_type"] == "application/strategic-merge-patch+json"
    assert call["body"] == {"spec": {"replicas": 4}}


async def test_a_pod_already_gone_is_not_an_error(api: Any) -> None:
    api.status = 404
    done = await runtime(api).restart("synod-coder-gone", "coder")
    assert done == "pod synod/synod-coder-gone is already gone"


async def test_a_refused_eviction_is_an_error_with_the_status(api: Any) -> None:
    api.status = 429  # a PodDisruptionBudget says not now
    with pytest.raises(RuntimeError_, match="429"):
        await runtime(api).restart("synod-coder-0", "coder")


async def test_negative_replicas_are_refused_before_any_call(api: Any) -> None:
    with pytest.raises(ValueError, match="replicas"):
        await runtime(api).scale("coder", -1)
    assert api.calls == []
