"""The gateway's HTTP API (aiohttp): submit tasks, read their status, stream their events.

    POST /v1/tasks               a task (short form) -> synod.tasks; 202 with its URLs
    GET  /v1/tasks/{id}          the task's status (a TaskView), from the view
    GET  /v1/tasks/{id}/events   text/event-stream: the task's events so far, then live,
                                 until its outcome
    GET  /healthz /readyz /metrics
    GET  /openapi.json           this API's OpenAPI 3.1 document, from the route table
    the web console at / and /console, and its /v1 endpoints: see `console`

`create_app` takes what it talks to (a publisher, the task feed, a readiness
check) as parameters, so the API runs in tests without Kafka. `server.Gateway`
wires the real ones.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import web
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from synod.errors import EncodeError, SynodError
from synod.service.health import HEALTH_PATHS, ReadyCheck, add_health_routes, always_ready
from synod.transport.topics import TASKS, topic_name
from synod.wire import Codec, ContentType, Envelope, Sender, TaskSubmitted, TraceContext

from .escalations import add_escalation_routes
from .openapi import OPENAPI_PATH, add_openapi_route
from .operations import Operations
from .projects import project_handler
from .responses import error_response
from .tokens import PRINCIPAL_KEY, RateLimiter, TokenBook, retry_after_header
from .view import TaskFeed
from .webconsole import (
    RawPublisher,
    WorkspaceReader,
    add_console_routes,
    is_console_path,
    same_origin_actions,
)

log = logging.getLogger("synod.gateway")

REQUESTS = Counter(
    "synod_gateway_requests_total",
    "API requests by outcome (health endpoints not included)",
    ["outcome"],
)
REQUEST_DURATION = Histogram(
    "synod_gateway_request_duration_seconds",
    "Time to answer an API request (event streams are counted, not timed)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMITED = Counter(
    "synod_gateway_rate_limited_total", "Requests refused with 429: a token over its rate"
)
OPEN_STREAMS = Gauge("synod_gateway_open_streams", "Event streams open now")

_OUTCOMES = {
    200: "ok",
    202: "accepted",
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    503: "unavailable",
}
_STREAM = web.RequestKey("synod_stream", bool)
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_TASK_FIELDS = tuple(TaskSubmitted.model_fields)
_SCHEMA = TaskSubmitted.model_json_schema()
MAX_BODY_BYTES = 1_048_576


class _NoRawPublisher:
    """Without a raw publisher (tests of other endpoints), a replay is refused."""

    async def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        raise SynodError("this gateway cannot republish records (no publisher)")


class EnvelopePublisher(Protocol):
    """What the gateway needs of `synod.transport.Publisher`."""

    async def publish(
        self, topic: str, envelope: Envelope[Any], content_type: ContentType = "avro"
    ) -> Any: ...


def create_app(
    publisher: EnvelopePublisher,
    feed: TaskFeed,
    *,
    topic_prefix: str = "",
    tokens: Sequence[str] = (),
    instance: str = "gateway-0",
    ready: ReadyCheck = always_ready,
    keepalive_s: float = 15.0,
    publish_timeout_s: float = 10.0,
    outcome_grace_s: float = 5.0,
    codec: Codec | None = None,
    operations: Operations | None = None,
    raw_publisher: RawPublisher | None = None,
    workspace: WorkspaceReader | None = None,
    trace_url: str = "",
    clock: Callable[[], float] = time.time,
    rate_per_s: float = 0.0,
    rate_burst: float = 20.0,
    request_timeout_s: float = 30.0,
    cors_origins: Sequence[str] = (),
) -> web.Application:
    """The gateway's aiohttp application.

    `tokens`: accepted bearer tokens; empty means no authentication. The health
    endpoints and the console's static files are always open (the files hold
    no data; the console reads everything from the token-protected /v1).
    `operations`, `raw_publisher`, `workspace`: what the console's agents,
    dead-letter and workspace pages read and act through; `trace_url`: a link
    to a trace UI with `{trace_id}` in it, shown on a task's page.
    `tokens` are `synod.roles.gateway.tokens` entries (hashes or tokens, each
    with its principal); `rate_per_s` / `rate_burst`: a token bucket per
    principal (0: unlimited), over it 429 with Retry-After; `request_timeout_s`
    bounds every answer but an event stream; `cors_origins`: origins allowed to
    call /v1 from a browser (none by default: no CORS header at all).
    """
    book = TokenBook.from_settings(tokens)
    limiter = RateLimiter(rate_per_s, rate_burst, time.monotonic)
    api = _Api(
        publisher=publisher,
        feed=feed,
        tasks_topic=topic_name(TASKS, topic_prefix),
        sender=Sender(role="gateway", instance=instance),
        keepalive_s=keepalive_s,
        publish_timeout_s=publish_timeout_s,
        outcome_grace_s=outcome_grace_s,
        codec=codec or Codec(),
    )
    app = web.Application(
        middlewares=[
            _metrics_middleware,
            _errors_middleware,
            _security_headers(tuple(cors_origins)),
            _auth_middleware(book, limiter),
            _time_limit(request_timeout_s),
            same_origin_actions,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app.router.add_post("/v1/tasks", api.submit)
    app.router.add_get("/v1/tasks/{task_id}", api.status)
    app.router.add_get("/v1/tasks/{task_id}/events", api.events)
    app.router.add_post("/v1/projects", project_handler(api.submit))
    add_escalation_routes(
        app,
        feed,
        publisher,
        topic_prefix=topic_prefix,
        sender=Sender(role="gateway", instance=instance),
        wait_s=publish_timeout_s,
    )
    add_console_routes(
        app,
        feed,
        operations or Operations(),
        publisher=raw_publisher or _NoRawPublisher(),
        topic_prefix=topic_prefix,
        instance=instance,
        auth_required=book.required,
        workspace=workspace,
        trace_url=trace_url,
        keepalive_s=keepalive_s,
        clock=clock,
    )
    add_health_routes(app, ready)
    add_openapi_route(app, tokens=any(tokens))

    async def end_streams(app: web.Application) -> None:
        feed.close()

    app.on_shutdown.append(end_streams)
    return app


def task_urls(task_id: str) -> dict[str, str]:
    path = f"/v1/tasks/{quote(task_id, safe='')}"
    return {"status_url": path, "events_url": f"{path}/events"}


# ---------------------------------------------------------------- middleware


def _outcome(status: int) -> str:
    if status in _OUTCOMES:
        return _OUTCOMES[status]
    return "client_error" if 400 <= status < 500 else "error" if status >= 500 else "ok"


@web.middleware
async def _metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path in HEALTH_PATHS:
        response: web.StreamResponse = await handler(request)
        return response
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        REQUESTS.labels(outcome=_outcome(status)).inc()
        if not request.get(_STREAM, False):
            REQUEST_DURATION.observe(time.perf_counter() - started)


@web.middleware
async def _errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error answer is the conventional JSON document, routing errors included."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            return error_response(
                413,
                "too_large",
                f"the request body is larger than {MAX_BODY_BYTES} bytes",
                {"limit_bytes": MAX_BODY_BYTES},
            )
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        message = f"{exc.reason}: {request.method} {request.path}"
        return error_response(exc.status, code, message, headers=headers)
    except Exception:
        log.exception("request failed", extra={"path": request.path})
        return error_response(500, "internal", "the gateway failed to answer; see its logs")


def _auth_middleware(book: TokenBook, limiter: RateLimiter) -> Any:
    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        open_path = (
            request.path in HEALTH_PATHS
            or request.path == OPENAPI_PATH
            or is_console_path(request.path)
        )
        if not book.required or open_path or request.method == "OPTIONS":
            response: web.StreamResponse = await handler(request)
            return response
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return error_response(
                401,
                "unauthorized",
                "this gateway needs a bearer token: send `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": 'Bearer realm="synod"'},
            )
        principal = book.principal_for(given.strip())
        if principal is None:
            return error_response(
                401,
                "invalid_token",
                "the bearer token is not one of this gateway's tokens (SYNOD_API_TOKENS)",
                headers={"WWW-Authenticate": 'Bearer realm="synod", error="invalid_token"'},
            )
        wait_s = limiter.admit(principal)
        if wait_s > 0:
            RATE_LIMITED.inc()
            return error_response(
                429,
                "rate_limited",
                f"more than {limiter.rate_per_s:g} requests per second for this token; "
                "retry after the Retry-After seconds",
                {"rate_per_s": limiter.rate_per_s, "burst": limiter.burst},
                headers={"Retry-After": retry_after_header(wait_s)},
            )
        request[PRINCIPAL_KEY] = principal
        response = await handler(request)
        return response

    return auth


def _time_limit(timeout_s: float) -> Any:
    """Bound every answer; an event stream is long-lived by design and bounded by its client."""

    @web.middleware
    async def limit(request: web.Request, handler: Any) -> web.StreamResponse:
        if timeout_s <= 0 or request.path.endswith("/events") or request.path in HEALTH_PATHS:
            response: web.StreamResponse = await handler(request)
            return response
        try:
            async with asyncio.timeout(timeout_s):
                response = await handler(request)
                return response
        except TimeoutError:
            return error_response(
                503,
                "timeout",
                f"the gateway could not answer within {timeout_s:g} s; try again",
                {"timeout_s": timeout_s},
            )

    return limit


# Pages of the console: no framing by other sites, no sniffing, scripts and
# styles from the gateway only, no referrer leaking task ids to other sites.
CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _security_headers(cors_origins: tuple[str, ...]) -> Any:
    """Security headers on every answer; CORS headers only for configured origins."""

    @web.middleware
    async def headers(request: web.Request, handler: Any) -> web.StreamResponse:
        origin = request.headers.get("Origin", "")
        allowed = origin in cors_origins
        if request.method == "OPTIONS" and allowed:
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        if not response.prepared:  # a stream's headers are already out
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            if is_console_path(request.path):
                for name, value in CONSOLE_HEADERS.items():
                    response.headers.setdefault(name, value)
            if allowed:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Vary"] = "Origin"
                response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        return response

    return headers


# ---------------------------------------------------------------- handlers


class _Api:
    def __init__(
        self,
        *,
        publisher: EnvelopePublisher,
        feed: TaskFeed,
        tasks_topic: str,
        sender: Sender,
        keepalive_s: float,
        publish_timeout_s: float,
        outcome_grace_s: float,
        codec: Codec,
    ) -> None:
        self.publisher = publisher
        self.feed = feed
        self.tasks_topic = tasks_topic
        self.sender = sender
        self.keepalive_s = keepalive_s
        self.publish_timeout_s = publish_timeout_s
        self.outcome_grace_s = outcome_grace_s
        self.codec = codec

    # ------------------------------------------------------------ POST /v1/tasks

    async def submit(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            return error_response(
                400,
                "malformed_json",
                f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                {"line": exc.lineno, "column": exc.colno, "position": exc.pos},
            )
        except (ValueError, RecursionError) as exc:  # not UTF-8, or nested beyond reason
            return error_response(400, "malformed_json", f"the body is not valid JSON: {exc}")
        if not isinstance(doc, dict):
            return _invalid(
                [
                    {
                        "field": "(body)",
                        "problem": f"a task is a JSON object, not a {_json_type(doc)}",
                        "type": "object_type",
                        "fix": 'send {"goal": "...", ...}',
                    }
                ]
            )
        problems: list[dict[str, Any]] = []
        task_id = doc.pop("task_id", None)
        if task_id is None:
            task_id = uuid.uuid4().hex
        elif not isinstance(task_id, str) or not 1 <= len(task_id) <= 200:
            problems.append(
                {
                    "field": "task_id",
                    "problem": "must be a string of 1 to 200 characters",
                    "type": "task_id",
                    "fix": "leave it out to have one generated, or send a string id",
                }
            )
        problems.extend(_unknown_fields(doc))
        body: TaskSubmitted | None = None
        try:
            body = TaskSubmitted.model_validate(doc)
        except ValidationError as exc:
            problems.extend(_field_errors(exc))
        if problems or body is None:
            return _invalid(problems)
        assert isinstance(task_id, str)

        known = self.feed.index.get(task_id)
        if known is not None:
            if known.request is None:
                return error_response(
                    409,
                    "conflict",
                    f"task {task_id!r} already exists (its submission is no longer in the log); "
                    "choose another task_id",
                    {"task_id": task_id},
                )
            differs = [f for f in _TASK_FIELDS if getattr(known.request, f) != getattr(body, f)]
            if differs:
                return error_response(
                    409,
                    "conflict",
                    f"task {task_id!r} was submitted with a different {', '.join(differs)}; "
                    "choose another task_id or resubmit the same task",
                    {"task_id": task_id, "fields": differs},
                )
            # The same task again: one task, and nothing more to publish.
            return self._accepted(task_id)

        envelope = self._envelope(task_id, body, request)
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                await self.publisher.publish(self.tasks_topic, envelope)
        except EncodeError as exc:
            return error_response(413, "too_large", str(exc), {"task_id": task_id})
        except (TimeoutError, SynodError, OSError, KafkaError) as exc:
            log.warning("publishing a task failed", extra={"error": repr(exc)})
            return error_response(
                503,
                "broker_unavailable",
                "the task could not be handed to Kafka; retry with the same task_id "
                "(resubmitting it is safe)",
                {"task_id": task_id, "error": repr(exc)[:300]},
                headers={"Retry-After": "1"},
            )
        # Read-your-writes: the task is known here before the planner's copy arrives.
        self.feed.apply(envelope)
        log.info("task submitted", extra={"task_id": task_id})
        return self._accepted(task_id)

    def _accepted(self, task_id: str) -> web.Response:
        urls = task_urls(task_id)
        return web.json_response(
            {"task_id": task_id, **urls}, status=202, headers={"Location": urls["status_url"]}
        )

    def _envelope(
        self, task_id: str, body: TaskSubmitted, request: web.Request
    ) -> Envelope[TaskSubmitted]:
        # Decoding the short form gives the message id every other entry point
        # gives the same task id (a UUIDv5 of it), so a retry is one task.
        short = {"task_id": task_id, **body.model_dump(mode="json")}
        decoded = self.codec.decode(json.dumps(short).encode())
        trace = TraceContext()
        traceparent = request.headers.get("traceparent", "").strip()
        if _TRACEPARENT.match(traceparent):
            trace = TraceContext(
                traceparent=traceparent, tracestate=request.headers.get("tracestate", "")[:512]
            )
        envelope: Envelope[TaskSubmitted] = decoded.model_copy(
            update={"sender": self.sender, "trace": trace}
        )
        return envelope

    # ------------------------------------------------------------ GET /v1/tasks/{id}

    async def status(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        view = self.feed.index.get(task_id)
        if view is None:
            return _not_found(task_id)
        doc = view.to_json()
        forged = self.feed.forged(task_id)
        if forged:  # records that failed authorship, never part of the view (docs/security.md)
            doc["forged"] = forged
        return web.json_response(doc)

    # ------------------------------------------------------------ GET /v1/tasks/{id}/events

    async def events(self, request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        view = self.feed.index.get(task_id)
        if view is None:
            return _not_found(task_id)
        request[_STREAM] = True
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # proxies must not buffer a stream
            }
        )
        await response.prepare(request)
        sent = _resume_point(view.entries(), request.headers.get("Last-Event-ID"))
        loop = asyncio.get_running_loop()
        held_since: float | None = None
        OPEN_STREAMS.inc()
        try:
            with self.feed.watch(task_id) as changed:
                while True:
                    changed.clear()
                    # Evicted from the index meanwhile: go on with the view we hold.
                    view = self.feed.index.get(task_id) or view
                    holding = False
                    for envelope, log_offset in view.entries():
                        if envelope.message_id in sent:
                            continue
                        if (
                            log_offset is None
                            and envelope.type != "TaskSubmitted"
                            and not self.feed.closing
                        ):
                            # Read on synod.results before the task's log caught up: hold
                            # it briefly, so the stream keeps log order.
                            held_since = held_since if held_since is not None else loop.time()
                            if loop.time() - held_since < self.outcome_grace_s:
                                holding = True
                                break
                        await response.write(_sse(envelope))
                        sent.add(envelope.message_id)
                    if not holding:
                        held_since = None
                        if view.terminal or self.feed.closing:
                            break
                    wait_s = self.keepalive_s
                    if held_since is not None:
                        wait_s = min(wait_s, held_since + self.outcome_grace_s - loop.time())
                    try:
                        async with asyncio.timeout(max(wait_s, 0.0)):
                            await changed.wait()
                    except TimeoutError:
                        if held_since is None:
                            await response.write(b": keep-alive\n\n")
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            OPEN_STREAMS.dec()
        return response


def _sse(envelope: Envelope[Any]) -> bytes:
    # JSON text never contains a raw newline, so one data line holds the envelope.
    return (
        f"id: {envelope.message_id}\nevent: {envelope.type}\n"
        f"data: {envelope.model_dump_json()}\n\n".encode()
    )


def _resume_point(entries: list[tuple[Envelope[Any], int | None]], last: str | None) -> set[str]:
    """The message ids a reconnecting client (Last-Event-ID) already has."""
    if not last:
        return set()
    ids = [e.message_id for e, _ in entries]
    if last not in ids:
        return set()
    return set(ids[: ids.index(last) + 1])


def _not_found(task_id: str) -> web.Response:
    return error_response(
        404,
        "not_found",
        f"no task {task_id!r} is known to this gateway (a task submitted elsewhere shows up "
        "once the planner has logged it)",
        {"task_id": task_id},
    )


# ---------------------------------------------------------------- validation messages


def _invalid(problems: list[dict[str, Any]]) -> web.Response:
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
    more = len(problems) - 5
    if more > 0:
        summary += f"; and {more} more"
    first_fix = next((p["fix"] for p in problems if p.get("fix")), None)
    message = f"invalid task: {summary}" + (f" (fix: {first_fix})" if first_fix else "")
    return error_response(422, "invalid_task", message, {"fields": problems})


def _unknown_fields(doc: dict[str, Any]) -> list[dict[str, Any]]:
    # Over HTTP a misspelt field is a mistake to report, not a newer client to
    # tolerate: silently dropping `reviwers` would run the task with defaults.
    out = []
    for name in doc:
        if name in _TASK_FIELDS:
            continue
        close = difflib.get_close_matches(name, (*_TASK_FIELDS, "task_id"), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        out.append(
            {
                "field": name,
                "problem": "unknown field",
                "type": "unknown_field",
                "fix": f"{hint}fields of a task: task_id, {', '.join(_TASK_FIELDS)}",
            }
        )
    return out


def _field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        field = _loc_text(loc)
        expected = _expected(loc)
        if err["type"] == "missing":
            fix = f"add {field}" + (f": {expected}" if expected else "")
        else:
            fix = f"{field} must be {expected}" if expected else err["msg"]
        out.append({"field": field, "problem": err["msg"], "type": err["type"], "fix": fix})
    return out


def _loc_text(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(body)"


def _expected(loc: tuple[int | str, ...]) -> str | None:
    """What the schema wants at `loc`, in words: `a string of 1 to 20000 characters`."""
    node: dict[str, Any] | None = _SCHEMA
    for part in loc:
        node = _resolve(node)
        if node is None:
            return None
        if isinstance(part, int):
            node = node.get("items")
        elif "properties" in node:
            node = node["properties"].get(part)
        else:
            node = node.get("additionalProperties")
            if not isinstance(node, dict):
                return None
    return _words(node)


def _resolve(node: dict[str, Any] | None) -> dict[str, Any] | None:
    """Follow a $ref, and of an anyOf take the branch that is not null."""
    while node is not None:
        if "$ref" in node:
            node = _SCHEMA["$defs"].get(node["$ref"].rsplit("/", 1)[-1])
        elif "anyOf" in node:
            branches = [b for b in node["anyOf"] if b.get("type") != "null"]
            node = branches[0] if branches else None
        else:
            return node
    return None


def _words(node: dict[str, Any] | None) -> str | None:
    if node is None:
        return None
    if "anyOf" in node:
        parts = [w for b in node["anyOf"] if (w := _words(b))]
        return " or ".join(parts) if parts else None
    if "$ref" in node:
        return f"a {node['$ref'].rsplit('/', 1)[-1]} object"
    if "enum" in node:
        return "one of " + ", ".join(json.dumps(v) for v in node["enum"])
    kind = node.get("type")
    if kind == "string":
        lo, hi = node.get("minLength"), node.get("maxLength")
        if lo is not None and hi is not None:
            return f"a string of {lo} to {hi} characters"
        return "a non-empty string" if lo else "a string"
    if kind in ("integer", "number"):
        bounds = []
        for key, sym in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        ):
            if key in node:
                bounds.append(f"{sym} {node[key]}")
        noun = "an integer" if kind == "integer" else "a number"
        return f"{noun} {' and '.join(bounds)}" if bounds else noun
    if kind == "array":
        items = _words(node.get("items"))
        return f"a list of {items}" if items else "a list"
    if kind == "object":
        values = _words(node.get("additionalProperties"))
        return f"an object with {values} values" if values else "an object"
    if kind == "boolean":
        return "true or false"
    if kind == "null":
        return "null"
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


__all__ = [
    "MAX_BODY_BYTES",
    "OPEN_STREAMS",
    "REQUESTS",
    "REQUEST_DURATION",
    "EnvelopePublisher",
    "create_app",
    "error_response",
    "task_urls",
]
