"""`/v1/escalations`: the tasks waiting for a person, and their answers; `/v1/tasks/{id}/cancel`.

    GET  /v1/escalations[?state=open|answered|closed|all][&task_id=T]
    GET  /v1/escalations/{escalation_id}
    POST /v1/escalations/{escalation_id}/answer
         {"action": "approve", "candidate_id": "answer"}
         {"action": "reject", "guidance": "handle the empty list"}
         {"action": "raise_budget", "budget": {"max_tokens": 200000}}
         {"action": "cancel"}
    POST /v1/tasks/{task_id}/cancel   {"reason": "..."} (optional body)

An answer names who gave it (the bearer token's principal, `tokens.principal_of`;
`anonymous` without tokens) and when, goes to
`synod.escalations` under the one message id an answer to that escalation can
have, and is taken by the planner into the task's log; the first on the log
is the answer. The handler waits for the gateway's view to show it there:
200 with the recorded answer when it is ours, 409 when another was first (or
was already, with who and when), 202 when the planner has not logged it yet.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from synod.core.escalations import Entry, EscalationBook, problem
from synod.core.task.escalation import answer_id
from synod.transport.topics import ESCALATIONS, TASKS, topic_name
from synod.wire import ContentType, Envelope, Sender
from synod.wire.messages import EscalationAnswered, TaskCancelRequested, utc_now

from .responses import error_response
from .tokens import principal_of

ANSWER_FIELDS = ("action", "candidate_id", "guidance", "budget")
ANONYMOUS = "anonymous"  # the principal of every caller of a gateway without tokens
STATES = ("open", "answered", "closed", "all")


class EnvelopePublisher(Protocol):
    async def publish(
        self, topic: str, envelope: Envelope[Any], content_type: ContentType = "avro"
    ) -> Any: ...


class Watched(Protocol):
    """What the routes need of the gateway's feed."""

    escalations: EscalationBook

    def watch_all(self) -> Any: ...


def add_escalation_routes(
    app: web.Application,
    feed: Watched,
    publisher: EnvelopePublisher,
    *,
    topic_prefix: str,
    sender: Sender,
    wait_s: float = 5.0,
) -> None:
    routes = _Routes(feed, publisher, topic_prefix, sender, wait_s)
    app.router.add_get("/v1/escalations", routes.list)
    # Escalation ids hold slashes (`<task>/escalation/...`), and any character: `.`
    # would leave an id with a newline to the generic, undocumented 404.
    by_id = "/v1/escalations/{escalation_id:[\\s\\S]+}"
    app.router.add_get(f"{by_id}/answer", _method_not_allowed)
    app.router.add_post(f"{by_id}/answer", routes.answer)
    app.router.add_get(by_id, routes.show)
    app.router.add_post("/v1/tasks/{task_id}/cancel", routes.cancel)


async def _method_not_allowed(request: web.Request) -> web.Response:
    return error_response(
        405, "method_not_allowed", "answer with POST and a JSON body", headers={"Allow": "POST"}
    )


class _Routes:
    def __init__(
        self,
        feed: Watched,
        publisher: EnvelopePublisher,
        topic_prefix: str,
        sender: Sender,
        wait_s: float,
    ) -> None:
        self.feed = feed
        self.publisher = publisher
        self.escalations_topic = topic_name(ESCALATIONS, topic_prefix)
        self.tasks_topic = topic_name(TASKS, topic_prefix)
        self.sender = sender
        self.wait_s = wait_s
        # Answers this gateway sent that its view has not shown yet: a second
        # answer meanwhile is refused here, not only by the log.
        self.pending: dict[str, EscalationAnswered] = {}

    async def list(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "open")
        if state not in STATES:
            return error_response(
                400, "bad_state", f"state {state!r}: send one of {', '.join(STATES)}"
            )
        entries = self.feed.escalations.listed(state, request.query.get("task_id"))
        return web.json_response({"escalations": [e.to_json() for e in entries]})

    async def show(self, request: web.Request) -> web.Response:
        entry = self._entry(request)
        if entry is None:
            return _unknown(request.match_info["escalation_id"])
        return web.json_response(entry.to_json())

    def _entry(self, request: web.Request) -> Entry | None:
        return self.feed.escalations.get(request.match_info["escalation_id"])

    async def answer(self, request: web.Request) -> web.Response:
        eid = request.match_info["escalation_id"]
        entry = self.feed.escalations.get(eid)
        if entry is None:
            return _unknown(eid)
        if entry.answer is not None:
            self.pending.pop(eid, None)  # the log has it now: the log says who
        doc = await _json_object(request)
        if isinstance(doc, web.Response):
            return doc
        unknown = [k for k in doc if k not in ANSWER_FIELDS]
        if unknown:
            return error_response(
                400,
                "unknown_field",
                f"unknown field {unknown[0]!r}; an answer has: {', '.join(ANSWER_FIELDS)}",
            )
        principal = principal_of(request) or ANONYMOUS
        try:
            answer = EscalationAnswered(
                escalation_id=eid, principal=principal, answered_at=utc_now(), **doc
            )
        except ValidationError as exc:
            return _invalid_answer(exc)
        pending = self.pending.get(eid)
        if pending is not None and entry.answer is None:
            return error_response(
                409,
                "already_answered",
                f"escalation {eid} was already answered ({pending.action}) by "
                f"{pending.principal} at {pending.answered_at.isoformat()}; "
                "an escalation takes one answer",
            )
        refused = problem(entry, answer)
        if refused is not None:
            status, code, message = refused
            return error_response(status, code, message, {"escalation": entry.to_json()})
        envelope = Envelope.new(
            answer, sender=self.sender, task_id=entry.task_id, message_id=answer_id(eid)
        )
        self.pending[eid] = answer
        try:
            await self.publisher.publish(self.escalations_topic, envelope)
        except BaseException:
            self.pending.pop(eid, None)
            raise
        recorded = await self._recorded(eid)
        if recorded is None:
            return web.json_response(
                {
                    "recorded": False,
                    "answer": answer.model_dump(mode="json", exclude_none=True),
                    "message": "sent; the planner takes it into the task's log when it runs",
                },
                status=202,
            )
        if recorded.principal != answer.principal or recorded.answered_at != answer.answered_at:
            refused = problem(entry, answer)
            assert refused is not None
            return error_response(409, refused[1], refused[2], {"escalation": entry.to_json()})
        return web.json_response({"recorded": True, "escalation": entry.to_json()})

    async def _recorded(self, eid: str) -> EscalationAnswered | None:
        """The answer the log took for `eid`, once the view shows it (or None in time)."""
        deadline = time.monotonic() + self.wait_s
        with self.feed.watch_all() as changed:
            while True:
                entry = self.feed.escalations.get(eid)
                if entry is not None and entry.answer is not None:
                    return entry.answer
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), left)
                except TimeoutError:
                    return None

    async def cancel(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        reason = ""
        if request.can_read_body:
            doc = await _json_object(request)
            if isinstance(doc, web.Response):
                return doc
            reason = str(doc.get("reason", ""))[:1_000]
        principal = principal_of(request) or ANONYMOUS
        body = TaskCancelRequested(principal=principal, reason=reason)
        envelope = Envelope.new(body, sender=self.sender, task_id=task_id)
        await self.publisher.publish(self.tasks_topic, envelope)
        return web.json_response({"task_id": task_id, "cancel": body.model_dump()}, status=202)


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        doc = json.loads(await request.read() or b"{}")
    except json.JSONDecodeError as exc:
        return error_response(400, "bad_json", f"the body is not JSON: {exc}")
    if not isinstance(doc, dict):
        return error_response(400, "bad_json", "send a JSON object")
    return doc


def _unknown(eid: str) -> web.Response:
    return error_response(
        404,
        "not_found",
        f"no escalation {eid!r} is known to this gateway; `GET /v1/escalations` lists them",
    )


_FIX = {
    "action": "action is one of approve, reject, raise_budget, cancel",
    "budget.max_tokens": "budget.max_tokens is a whole number of tokens >= 1 (or null)",
    "budget.max_cost_usd": "budget.max_cost_usd is a number of US dollars > 0 (or null)",
    "budget.max_model_calls": "budget.max_model_calls is a whole number >= 1 (or null)",
    "budget.on_exhausted": "budget.on_exhausted is one of fail, escalate, warn",
}


def _invalid_answer(exc: ValidationError) -> web.Response:
    problems = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "(the answer)"
        fix = _FIX.get(field, err["msg"])
        problems.append({"field": field, "problem": err["msg"], "fix": fix})
    summary = "; ".join(f"{p['field']}: {p['problem']} (fix: {p['fix']})" for p in problems[:5])
    return error_response(422, "invalid_answer", f"invalid answer: {summary}", {"fields": problems})
