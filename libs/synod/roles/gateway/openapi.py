"""The gateway's OpenAPI 3.1 document, made from the app's own route table.

`document(app)` walks `app.router`: every route the app serves is in the
document, so an endpoint added to `create_app` is published without touching
this module; what it says about a route (summary, bodies, each status and the
error codes under it) comes from `OPERATIONS` when the route is listed there,
and is the answers every route can give otherwise. The bodies are the JSON
Schemas of the same pydantic models the gateway speaks (`synod.wire`,
`synod.core.taskview`). Served at GET /openapi.json; schemas/openapi.json is
the same document for a gateway with no tokens, written by `make schemas`
(`python -m synod.roles.gateway.openapigen [--check]`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

import synod
from synod.core.taskview import TaskStatus
from synod.wire import TaskSubmitted

OPENAPI_PATH = "/openapi.json"
_JSON = "application/json"
_PARAM = re.compile(r"\{([^}:]+)(:[^}]*)?\}")


@dataclass(frozen=True)
class Answer:
    """One status of an operation: what it means, and for an error the codes it carries."""

    description: str
    codes: tuple[str, ...] = ()  # error.code values; empty for a success
    schema: str | dict[str, Any] | None = None  # a component name, or an inline schema
    media: str = _JSON
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    answers: dict[int, Answer]
    body: str | None = None  # a component schema name
    body_required: bool = True
    query: tuple[tuple[str, str], ...] = ()  # (name, description)
    public: bool = False  # answered without a bearer token
    extra: dict[str, Any] = field(default_factory=dict)


_NOT_FOUND_TASK = Answer("no task with this id is known to this gateway", ("not_found",))
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_ACCEPTED = Answer(
    "accepted: the task is on synod.tasks (or was already, the same task)",
    schema="TaskAccepted",
    headers=("Location",),
)
_SUBMIT_ERRORS = {
    400: Answer("the body is not JSON", ("malformed_json",)),
    409: Answer("a different task already has this task_id", ("conflict",)),
    413: Answer("the body or the encoded task is too large", ("too_large",)),
    503: Answer(
        "Kafka did not take the task; retrying with the same task_id is safe",
        ("broker_unavailable",),
        headers=("Retry-After",),
    ),
}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/v1/tasks"): Operation(
        "Submit a task",
        "tasks",
        {
            202: _ACCEPTED,
            **_SUBMIT_ERRORS,
            422: Answer(
                "the task is not valid; details.fields says what to fix", ("invalid_task",)
            ),
        },
        body="TaskRequest",
    ),
    ("GET", "/v1/tasks/{task_id}"): Operation(
        "A task's status",
        "tasks",
        {200: Answer("the task's status", schema="TaskStatus"), 404: _NOT_FOUND_TASK},
    ),
    ("GET", "/v1/tasks/{task_id}/events"): Operation(
        "A task's events, then live ones until its outcome (server-sent events)",
        "tasks",
        {
            200: Answer(
                "one event per envelope: id = message_id, event = type, data = the envelope",
                schema={"type": "string"},
                media="text/event-stream",
            ),
            404: _NOT_FOUND_TASK,
        },
    ),
    ("POST", "/v1/projects"): Operation(
        "Submit a project (steps with dependencies and the files each writes)",
        "tasks",
        {
            202: _ACCEPTED,
            **_SUBMIT_ERRORS,
            422: Answer(
                "the project or its task is not valid",
                ("invalid", "invalid_project", "invalid_task"),
            ),
        },
        body="ProjectRequest",
    ),
    ("GET", "/v1/tasks"): Operation(
        "Recent tasks (the console's list)",
        "console",
        {
            200: Answer("tasks, newest first", schema=_ANY_OBJECT),
            400: Answer("a bad query parameter", ("bad_parameter",)),
        },
        query=(
            ("limit", "how many (1 to the list limit)"),
            ("q", "only tasks whose summary matches"),
            ("state", "only tasks in this state"),
            ("label", "only tasks with this label"),
        ),
    ),
    ("GET", "/v1/tasks/{task_id}/detail"): Operation(
        "A task's detail: DAG, attempts, ballots, timeline",
        "console",
        {200: Answer("the detail", schema=_ANY_OBJECT), 404: _NOT_FOUND_TASK},
    ),
    ("GET", "/v1/tasks/{task_id}/workspace"): Operation(
        "A task's workspace files",
        "console",
        {
            200: Answer("the files", schema=_ANY_OBJECT),
            404: _NOT_FOUND_TASK,
            503: Answer("the workspace cannot be read now", ("unavailable",)),
        },
    ),
    ("GET", "/v1/streams/tasks"): Operation(
        "Every task's changes (server-sent events)",
        "console",
        {
            200: Answer(
                "task summaries as they change",
                schema={"type": "string"},
                media="text/event-stream",
            )
        },
    ),
    ("GET", "/v1/console"): Operation(
        "What the console needs to know of this gateway",
        "console",
        {200: Answer("instance, authentication, links", schema=_ANY_OBJECT)},
    ),
    ("GET", "/v1/agents"): Operation(
        "The agents seen on synod.heartbeats",
        "console",
        {200: Answer("agents", schema=_ANY_OBJECT)},
    ),
    ("GET", "/v1/cost"): Operation(
        "Tokens and cost by task and model", "console", {200: Answer("cost", schema=_ANY_OBJECT)}
    ),
    ("GET", "/v1/deadletters"): Operation(
        "Dead letters on synod.dlq",
        "dead letters",
        {
            200: Answer("dead letters", schema=_ANY_OBJECT),
            400: Answer("a bad query parameter", ("bad_parameter",)),
        },
        query=(
            ("since", "only newer than this (a duration such as 1h, or a time)"),
            ("reason", "only with this reason"),
            ("topic", "only from this source topic"),
        ),
    ),
    ("GET", "/v1/deadletters/{letter_id}"): Operation(
        "One dead letter",
        "dead letters",
        {
            200: Answer("the dead letter", schema=_ANY_OBJECT),
            404: Answer("no such dead letter", ("not_found",)),
        },
    ),
    ("POST", "/v1/deadletters/{letter_id}/replay"): Operation(
        'Replay a dead letter to its source topic, once (body {"confirm": true})',
        "dead letters",
        {
            200: Answer("where the copy went", schema=_ANY_OBJECT),
            400: Answer(
                "the body is not JSON or not confirmed", ("malformed_json", "confirmation_required")
            ),
            404: Answer("no such dead letter", ("not_found",)),
            409: Answer(
                "already replayed, or its copy would be cut or poison",
                ("already_replayed", "truncated", "poison"),
            ),
            415: Answer("the body is not JSON", ("unsupported_media_type",)),
            503: Answer("Kafka did not take the copy", ("broker_unavailable",)),
        },
        body="ReplayRequest",
    ),
    ("GET", "/v1/escalations"): Operation(
        "Escalations: questions the team puts to a person",
        "escalations",
        {
            200: Answer("escalations", schema=_ANY_OBJECT),
            400: Answer("an unknown state", ("bad_state",)),
        },
        query=(("state", "only escalations in this state"), ("task_id", "only of this task")),
    ),
    ("GET", "/v1/escalations/{escalation_id}"): Operation(
        "One escalation",
        "escalations",
        {
            200: Answer("the escalation", schema=_ANY_OBJECT),
            404: Answer("no such escalation", ("not_found",)),
        },
    ),
    ("GET", "/v1/escalations/{escalation_id}/answer"): Operation(
        "Not allowed: an answer is a POST",
        "escalations",
        {405: Answer("answer with POST", ("method_not_allowed",), headers=("Allow",))},
    ),
    ("POST", "/v1/escalations/{escalation_id}/answer"): Operation(
        "Answer an escalation",
        "escalations",
        {
            200: Answer(
                "the answer was sent (and recorded, when the log took it)", schema=_ANY_OBJECT
            ),
            400: Answer(
                "not JSON, an unknown field, or a choice not on the ballot",
                ("bad_json", "unknown_field", "not_on_ballot"),
            ),
            404: Answer("no such escalation", ("not_found",)),
            409: Answer("already answered, or its task ended", ("already_answered", "task_ended")),
            422: Answer("the answer is not valid", ("invalid_answer",)),
        },
        body_required=False,
    ),
    ("POST", "/v1/tasks/{task_id}/cancel"): Operation(
        "Ask the planner to cancel a task",
        "tasks",
        {
            202: Answer("the request is on synod.tasks", schema=_ANY_OBJECT),
            400: Answer("the body is not a JSON object", ("bad_json",)),
        },
    ),
    ("GET", "/healthz"): Operation(
        "Alive", "health", {200: Answer("alive", schema=_ANY_OBJECT)}, public=True
    ),
    ("GET", "/readyz"): Operation(
        "Can serve: broker reachable, assignments held",
        "health",
        {
            200: Answer("ready, with the checks", schema=_ANY_OBJECT),
            503: Answer("not ready, with the checks", schema=_ANY_OBJECT),
        },
        public=True,
    ),
    ("GET", "/metrics"): Operation(
        "Prometheus metrics",
        "health",
        {200: Answer("the Prometheus text format", schema={"type": "string"}, media="text/plain")},
        public=True,
    ),
    ("GET", OPENAPI_PATH): Operation(
        "This document",
        "health",
        {200: Answer("the OpenAPI 3.1 document", schema=_ANY_OBJECT)},
        public=True,
    ),
}
_CONSOLE_FILES = Operation(
    "The web console (static files)",
    "console",
    {
        200: Answer("a file of the console", schema={"type": "string"}, media="text/html"),
        302: Answer("to /console/"),
        404: Answer("no such file", ("not_found",)),
    },
    public=True,
)


def _error_schema(codes: tuple[str, ...]) -> dict[str, Any]:
    code: dict[str, Any] = {"type": "string"}
    if codes:
        code["enum"] = list(codes)
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": code,
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
            }
        },
    }


def _response(answer: Answer) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    schema: Any = answer.schema
    if answer.codes:
        schema = _error_schema(answer.codes)
    elif isinstance(schema, str):
        schema = {"$ref": f"#/components/schemas/{schema}"}
    if schema is not None:
        out["content"] = {answer.media: {"schema": schema}}
    if answer.headers:
        out["headers"] = {h: {"schema": {"type": "string"}} for h in answer.headers}
    return out


# What any route may answer besides its own statuses (the middlewares).
def _common(method: str, public: bool, tokens: bool, path: str) -> dict[int, Answer]:
    common = {500: Answer("the gateway failed; see its logs", ("internal",))}
    if not path.endswith("/events") and not path.startswith("/v1/streams/"):
        common[503] = Answer("no answer within the gateway's time limit", ("timeout",))
    if method not in ("GET", "HEAD", "OPTIONS"):
        common[403] = Answer("sent from another site's page", ("cross_origin",))
        common[413] = Answer("the body is larger than 1 MiB", ("too_large",))
    if tokens and not public:
        common[401] = Answer(
            "no bearer token, or not one of this gateway's", ("unauthorized", "invalid_token")
        )
        common[429] = Answer(
            "too many requests for this token", ("rate_limited",), headers=("Retry-After",)
        )
    return common


def _operation(method: str, path: str, tokens: bool) -> dict[str, Any]:
    op = OPERATIONS.get((method, path))
    if op is None and (path in ("/", "/console", "/console/") or path.startswith("/console/")):
        op = _CONSOLE_FILES
    if op is None:
        op = Operation(f"{method} {path}", "other", {200: Answer("the answer", schema=_ANY_OBJECT)})
    answers = _common(method, op.public, tokens, path)
    for status, answer in op.answers.items():
        before = answers.get(status)
        if before is not None and before.codes and answer.codes:
            # Both a middleware and the handler answer this status: either body may come.
            codes = answer.codes + tuple(c for c in before.codes if c not in answer.codes)
            answer = Answer(answer.description, codes, answer.schema, answer.media, answer.headers)
        answers[status] = answer
    doc: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {str(s): _response(a) for s, a in sorted(answers.items())},
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name, _ in _PARAM.findall(path)
    ]
    params += [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in op.query
    ]
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{op.body}"}}},
        }
    if tokens and op.public:
        doc["security"] = []
    return doc


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", _PARAM.sub(r"by_\1", path)) if w]
    if path.endswith("/"):
        words.append("index")  # /console and /console/ are two routes
    return "_".join([method.lower(), *words])


def _models() -> dict[str, Any]:
    """Component schemas from the pydantic models, refs pointing at components."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (TaskSubmitted, "validation"),
        (TaskStatus, "serialization"),
    ]
    _, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    submitted = dict(schemas["TaskSubmitted"])
    submitted["properties"] = {
        "task_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "yours, or one is made",
        },
        **submitted["properties"],
    }
    submitted["title"] = "TaskRequest"
    submitted["description"] = "A task in its short form: a goal and any TaskSubmitted field."
    submitted["additionalProperties"] = False
    schemas["TaskRequest"] = submitted
    schemas["TaskAccepted"] = {
        "type": "object",
        "required": ["task_id", "status_url", "events_url"],
        "properties": {
            "task_id": {"type": "string"},
            "status_url": {"type": "string"},
            "events_url": {"type": "string"},
        },
    }
    schemas["ProjectRequest"] = {
        "type": "object",
        "description": "A project (docs/plan.md): tasks with dependencies; a team mode.",
        "required": ["tasks"],
        "properties": {
            "task_id": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "tasks": {"type": "array", "items": {"type": "object"}},
            "mode": {"type": "string", "enum": ["synod", "central", "claim"]},
            "agents": {"type": "integer", "minimum": 1, "maximum": 1000},
            "tests": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    schemas["ReplayRequest"] = {
        "type": "object",
        "required": ["confirm"],
        "properties": {"confirm": {"type": "boolean", "const": True}},
    }
    return dict(sorted(schemas.items()))


def document(app: web.Application, *, tokens: bool = False) -> dict[str, Any]:
    """The OpenAPI document of every route `app` serves (HEAD routes folded into GET)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        method = route.method.upper()
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if method in ("HEAD", "*") or not isinstance(path, str):
            continue
        paths.setdefault(_PARAM.sub(r"{\1}", path), {})[method.lower()] = _operation(
            method, path, tokens
        )
    schemas = _models()
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Synod gateway",
            "version": synod.__version__,
            "description": (
                "Submit tasks, read their status, stream their events (docs/gateway.md). "
                'Every error is {"error": {"code", "message", "details"}}; each response '
                "lists the codes it may carry."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "`synod up`"}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas},
    }
    if tokens:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


def add_openapi_route(app: web.Application, *, tokens: bool) -> None:
    """GET /openapi.json, made on the first request from the routes the app has then."""
    made: dict[str, Any] = {}

    async def serve(request: web.Request) -> web.Response:
        if not made:
            made.update(document(request.app, tokens=tokens))
        return web.json_response(made)

    app.router.add_get(OPENAPI_PATH, serve)
