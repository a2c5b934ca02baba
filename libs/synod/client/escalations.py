"""`Escalations`: the tasks waiting for a person, and a person's answer, through the gateway.

Answers go over HTTP to `/v1/escalations` (docs/gateway.md), not to Kafka: the
gateway checks an answer against the ballot and records it under the bearer
token's principal, the same from the CLI, a script and the console.

    from synod.client import Escalations
    desk = Escalations()                       # SYNOD_GATEWAY_URL, SYNOD_API_TOKEN
    for e in desk.list().doc["escalations"]:
        desk.approve(e["escalation_id"])       # or reject(id, guidance=...), cancel(id)
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Reply:
    """The gateway's answer: its HTTP status (0: not reached) and its JSON body."""

    status: int
    doc: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        """What went wrong, from the error body (docs/gateway.md's `error.message`)."""
        error = self.doc.get("error", {}) if isinstance(self.doc, dict) else {}
        return str(error.get("message") or f"HTTP {self.status}")


class Escalations:
    """The gateway's `/v1/escalations`, blocking (urllib; one request per call)."""

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout_s: float = 30.0
    ) -> None:
        self.url = (url or os.environ.get("SYNOD_GATEWAY_URL") or DEFAULT_URL).rstrip("/")
        self.token = token or os.environ.get("SYNOD_API_TOKEN")
        self.timeout_s = timeout_s

    def list(self, state: str = "open", task_id: str | None = None) -> Reply:
        """`{"escalations": [...]}` in one state: open, answered, closed or all."""
        query = {"state": state, **({"task_id": task_id} if task_id else {})}
        return self._call("GET", f"/v1/escalations?{urlencode(query)}")

    def get(self, escalation_id: str) -> Reply:
        return self._call("GET", _path(escalation_id))

    def answer(
        self,
        escalation_id: str,
        action: str,
        *,
        candidate_id: str | None = None,
        guidance: str | None = None,
        budget: dict[str, Any] | None = None,
    ) -> Reply:
        """Any answer; 200 `recorded` once the task's log has it, 202 sent (docs/gateway.md)."""
        doc: dict[str, Any] = {"action": action}
        if candidate_id is not None:
            doc["candidate_id"] = candidate_id
        if guidance is not None:
            doc["guidance"] = guidance
        if budget is not None:
            doc["budget"] = budget
        return self._call("POST", _path(escalation_id, "/answer"), doc)

    def approve(self, escalation_id: str, candidate_id: str = "answer") -> Reply:
        return self.answer(escalation_id, "approve", candidate_id=candidate_id)

    def reject(self, escalation_id: str, guidance: str) -> Reply:
        return self.answer(escalation_id, "reject", guidance=guidance)

    def raise_budget(self, escalation_id: str, **budget: Any) -> Reply:
        """`max_tokens`, `max_cost_usd`, `max_model_calls`, `on_exhausted`."""
        return self.answer(escalation_id, "raise_budget", budget=budget)

    def cancel(self, escalation_id: str) -> Reply:
        return self.answer(escalation_id, "cancel")

    def _call(self, method: str, path: str, doc: Any = None) -> Reply:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(doc).encode() if doc is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return Reply(response.status, json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return Reply(exc.code, json.loads(body))
            except json.JSONDecodeError:
                text = body.decode(errors="replace")[:500]
                return Reply(exc.code, {"error": {"message": text}})
        except OSError as exc:
            message = (
                f"cannot reach the gateway at {self.url}: {exc} (set SYNOD_GATEWAY_URL or --url)"
            )
            return Reply(0, {"error": {"message": message}})


def _path(escalation_id: str, tail: str = "") -> str:
    return f"/v1/escalations/{quote(escalation_id, safe='/')}{tail}"


__all__ = ["Escalations", "Reply"]
