"""The web console: its static files (package `console`), and the JSON endpoints it reads.

    GET  /  /console  /console/{file}   the console (plain ES modules + CSS, package
                                        data under console/); open without a token,
                                        it holds no data: everything comes from /v1
    GET  /v1/console                    what the console needs to know of this gateway
    GET  /v1/tasks                      the task list (?q= id/goal/label text, ?state=,
                                        ?label=key or key=value, ?limit=)
    GET  /v1/streams/tasks              text/event-stream: a `task` event per task now,
                                        then one per change (the live list)
    GET  /v1/tasks/{id}/detail          DAG, attempts, timeline, ballots, tests, cost
    GET  /v1/tasks/{id}/workspace       the task's files, conflicts and merges
    GET  /v1/agents                     every instance by role, from heartbeats
    GET  /v1/deadletters                ?reason= ?topic= ?since= (repeatable)
    GET  /v1/deadletters/{id}           one dead letter, bytes included
    POST /v1/deadletters/{id}/replay    {"confirm": true}: republish it once
    GET  /v1/cost                       tokens and cost per task, role and model

Every `/v1` endpoint needs a bearer token when tokens are configured (the
app's auth middleware). The console sends the token in the `Authorization`
header from the page's session storage, never in a cookie, so another site
cannot make a browser act with it (no ambient credential, no CSRF); actions
also refuse a cross-site `Origin` and any body that is not JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

from aiohttp import web
from aiokafka.errors import KafkaError

from synod.core.deadletters import (
    DeadLetterFilter,
    parse_since,
    plan_replay,
    replay_record,
    select,
    source_topics,
)
from synod.core.taskdetail import cost_of, matches, merge_cost, task_detail, task_summary
from synod.core.workspace.records import Materialised
from synod.errors import DecodeError, SynodError
from synod.transport.topics import DLQ_REPLAYS, topic_name
from synod.wire import Codec, StepCompleted

from .operations import Operations
from .responses import error_response
from .view import TaskFeed

# The console's files: name -> content type. Only these are served.
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "dag.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CONSOLE_PATHS = frozenset({"/", "/console", "/console/"})
# The page may load only its own scripts and styles, and talk only to this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
LIST_LIMIT = 500
WORKSPACE_CONTENT_CHARS = 4_000
REPLAYED_FROM_HEADER = "synod-replayed-from"  # as `synod dlq replay` marks a copy
_LIST_THROTTLE_S = 0.25

WorkspaceReader = Callable[[str, dict[str, str]], Awaitable[Materialised]]


class RawPublisher(Protocol):
    async def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any: ...


def is_console_path(path: str) -> bool:
    return path in CONSOLE_PATHS or path.startswith("/console/")


def _error(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    return error_response(status, code, message, details)


def _static(name: str) -> bytes:
    return resources.files("synod.roles.gateway.console").joinpath(name).read_bytes()


def add_console_routes(
    app: web.Application,
    feed: TaskFeed,
    operations: Operations,
    *,
    publisher: RawPublisher,
    topic_prefix: str = "",
    instance: str = "gateway-0",
    auth_required: bool = False,
    workspace: WorkspaceReader | None = None,
    trace_url: str = "",
    keepalive_s: float = 15.0,
    clock: Callable[[], float] = time.time,
) -> None:
    console = _Console(
        feed=feed,
        operations=operations,
        publisher=publisher,
        topic_prefix=topic_prefix,
        instance=instance,
        auth_required=auth_required,
        workspace=workspace,
        trace_url=trace_url,
        keepalive_s=keepalive_s,
        clock=clock,
    )
    app.router.add_get("/", console.home)
    app.router.add_get("/console", console.home)
    app.router.add_get("/console/", console.index)
    app.router.add_get("/console/{name}", console.file)
    app.router.add_get("/v1/console", console.about)
    app.router.add_get("/v1/tasks", console.tasks)
    app.router.add_get("/v1/streams/tasks", console.task_stream)
    app.router.add_get("/v1/tasks/{task_id}/detail", console.detail)
    app.router.add_get("/v1/tasks/{task_id}/workspace", console.workspace_files)
    app.router.add_get("/v1/agents", console.agents)
    app.router.add_get("/v1/deadletters", console.dead_letters)
    app.router.add_get("/v1/deadletters/{letter_id}", console.dead_letter)
    app.router.add_post("/v1/deadletters/{letter_id}/replay", console.replay)
    app.router.add_get("/v1/cost", console.cost)


@web.middleware
async def same_origin_actions(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refuse a state-changing request that a browser sent from another site."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        site = request.headers.get("Sec-Fetch-Site", "")
        origin = request.headers.get("Origin", "")
        own = {f"http://{request.host}", f"https://{request.host}"}
        if site == "cross-site" or (origin and origin != "null" and origin not in own):
            return _error(
                403,
                "cross_origin",
                "this gateway refuses actions sent from another site's page",
                {"origin": origin, "sec_fetch_site": site},
            )
    response: web.StreamResponse = await handler(request)
    return response


class _Console:
    def __init__(
        self,
        *,
        feed: TaskFeed,
        operations: Operations,
        publisher: RawPublisher,
        topic_prefix: str,
        instance: str,
        auth_required: bool,
        workspace: WorkspaceReader | None,
        trace_url: str,
        keepalive_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.feed = feed
        self.ops = operations
        self.publisher = publisher
        self.prefix = topic_prefix
        self.instance = instance
        self.auth_required = auth_required
        self.workspace = workspace
        self.trace_url = trace_url
        self.keepalive_s = keepalive_s
        self.clock = clock
        self.replaying = asyncio.Lock()  # one replay at a time: "once" is checked then done

    # ------------------------------------------------------------ static files

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")

    async def index(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            return _error(404, "not_found", f"the console has no file {name!r}", {"file": name})
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        return web.Response(
            body=_static(name),
            headers={"Content-Type": STATIC_FILES[name], **SECURITY_HEADERS},
        )

    async def about(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "instance": self.instance,
                "auth_required": self.auth_required,
                "trace_url": self.trace_url,
                "workspace": self.workspace is not None,
                # The approvals inbox: /v1/escalations (synod.roles.gateway.escalations).
                "approvals": True,
            }
        )

    # ------------------------------------------------------------ tasks

    async def tasks(self, request: web.Request) -> web.Response:
        q = request.query
        limit = _int_param(q.get("limit"), LIST_LIMIT)
        if limit is None:
            return _error(
                400,
                "bad_parameter",
                f"limit must be an integer from 1 to {LIST_LIMIT}",
                {"parameter": "limit", "value": q.get("limit")},
            )
        rows = []
        for view in self.feed.index:
            row = task_summary(view)
            if matches(row, q.get("q", ""), q.get("state", ""), q.get("label", "")):
                rows.append(row)
                if len(rows) >= limit:
                    break
        return web.json_response({"tasks": rows, "total": len(self.feed.index)})

    async def task_stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        sent: dict[str, int] = {}
        try:
            with self.feed.watch_all() as changed:
                while not self.feed.closing:
                    changed.clear()
                    for n, view in enumerate(self.feed.index):
                        if n >= LIST_LIMIT:
                            break
                        if sent.get(view.task_id) == view.version:
                            continue
                        sent[view.task_id] = view.version
                        data = json.dumps(task_summary(view))
                        await response.write(f"event: task\ndata: {data}\n\n".encode())
                    await response.write(b"event: synced\ndata: {}\n\n")
                    try:
                        async with asyncio.timeout(self.keepalive_s):
                            await changed.wait()
                    except TimeoutError:
                        await response.write(b": keep-alive\n\n")
                        continue
                    # Changes come in bursts (a step's outcome, then the next request):
                    # send them together.
                    await asyncio.sleep(_LIST_THROTTLE_S)
            await response.write_eof()
        except ConnectionError:
            pass  # the page went away
        return response

    async def detail(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        view = self.feed.index.get(task_id)
        if view is None:
            return _unknown_task(task_id)
        doc = task_detail(view, self.feed.votes(task_id))
        # Records claiming this task that failed authorship: shown as forged, not as events.
        doc["forged"] = self.feed.forged(task_id)
        trace_id = doc["trace_id"]
        doc["trace_url"] = (
            self.trace_url.replace("{trace_id}", trace_id) if trace_id and self.trace_url else None
        )
        return web.json_response(doc)

    async def workspace_files(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        view = self.feed.index.get(task_id)
        if view is None:
            return _unknown_task(task_id)
        if self.workspace is None:
            return _error(503, "unavailable", "this gateway does not read the workspace topic", {})
        winners: dict[str, str] = {}
        for envelope in view.envelopes():
            if isinstance(envelope.body, StepCompleted) and envelope.causes:
                winners.setdefault(envelope.body.step_id, envelope.causes[0])
        try:
            folded = await self.workspace(task_id, winners)
        except (SynodError, KafkaError, OSError) as exc:
            return _error(
                503,
                "broker_unavailable",
                "the workspace could not be read from Kafka; try again",
                {"error": repr(exc)[:300]},
            )
        return web.json_response(workspace_json(folded))

    # ------------------------------------------------------------ agents and cost

    async def agents(self, request: web.Request) -> web.Response:
        agents = self.ops.fleet.agents(self.clock())
        return web.json_response({"agents": agents, "at": _iso(self.clock())})

    async def cost(self, request: web.Request) -> web.Response:
        tasks = []
        for view in self.feed.index:
            cost = cost_of(view.envelopes())
            tasks.append({"task_id": view.task_id, "state": view.state, **cost})
        total = merge_cost(tasks)
        tasks.sort(key=lambda t: -t["total"]["cost_usd"])
        return web.json_response({**total, "tasks": tasks[:LIST_LIMIT]})

    # ------------------------------------------------------------ dead letters

    async def dead_letters(self, request: web.Request) -> web.Response:
        q = request.query
        since = None
        if "since" in q:
            try:
                since = parse_since(q["since"], datetime.fromtimestamp(self.clock(), UTC))
            except ValueError as exc:
                return _error(
                    400,
                    "bad_parameter",
                    str(exc).replace("--since", "since"),
                    {"parameter": "since", "value": q["since"]},
                )
        wanted = DeadLetterFilter(
            reasons=frozenset(q.getall("reason", [])),
            since=since,
            topics=source_topics(q.getall("topic", []), self.prefix),
        )
        rows = [
            {**e.summary(), "replayed": e.dead_letter_id in self.ops.replays}
            for e in select(self.ops.dead_letters, wanted)
        ]
        rows.reverse()  # newest failure first
        reasons = sorted({e.letter.reason for e in self.ops.dead_letters})
        topics = sorted({e.letter.source_topic for e in self.ops.dead_letters})
        return web.json_response(
            {
                "dead_letters": rows[:LIST_LIMIT],
                "total": len(rows),
                "reasons": reasons,
                "topics": topics,
            }
        )

    async def dead_letter(self, request: web.Request) -> web.Response:
        letter_id = request.match_info["letter_id"]
        entry = self.ops.dead_letters.get(letter_id)
        if entry is None:
            return _unknown_letter(letter_id)
        doc = entry.detail()
        doc["replay"] = self.ops.replays.get(letter_id)
        doc["decoded"], doc["decode_error"] = None, None
        if entry.truncated:
            doc["decode_error"] = f"only the first {len(entry.letter.value)} bytes are kept"
        else:
            try:
                doc["decoded"] = Codec().decode(entry.letter.value).model_dump(mode="json")
            except DecodeError as exc:
                doc["decode_error"] = f"{exc.reason}: {exc.detail}"
        return web.json_response(doc)

    async def replay(self, request: web.Request) -> web.Response:
        letter_id = request.match_info["letter_id"]
        if request.content_type != "application/json":
            return _error(
                415,
                "unsupported_media_type",
                'send the replay as JSON: {"confirm": true}',
                {"content_type": request.content_type},
            )
        try:
            doc = json.loads(await request.read())
        except ValueError:
            return _error(400, "malformed_json", 'the body is not JSON; send {"confirm": true}')
        if not isinstance(doc, dict) or doc.get("confirm") is not True:
            return _error(
                400,
                "confirmation_required",
                "a replay republishes the record to its source topic; confirm with "
                '{"confirm": true}',
                {"id": letter_id},
            )
        include_poison = doc.get("include_poison") is True
        async with self.replaying:
            entry = self.ops.dead_letters.get(letter_id)
            if entry is None:
                return _unknown_letter(letter_id)
            plan = plan_replay(
                self.ops.dead_letters,
                DeadLetterFilter(ids=frozenset({letter_id})),
                self.ops.replays,
                include_poison=include_poison,
            )
            if plan.already_replayed:
                done = self.ops.replays.get(letter_id) or {}
                return _error(
                    409,
                    "already_replayed",
                    f"dead letter {letter_id} was already replayed at "
                    f"{done.get('replayed_at', '?')} by {done.get('by', '?')}; "
                    "it is replayed at most once",
                    {"id": letter_id, "replay": done},
                )
            if plan.truncated:
                return _error(
                    409,
                    "truncated",
                    f"dead letter {letter_id} keeps only the head of an oversized value; "
                    "it cannot be replayed",
                    {"id": letter_id},
                )
            if plan.poison:
                return _error(
                    409,
                    "poison",
                    f"dead letter {letter_id} failed to decode ({entry.letter.reason}); "
                    'replaying it would only dead-letter it again (send "include_poison": true '
                    "to replay it anyway)",
                    {"id": letter_id, "reason": entry.letter.reason},
                )
            record = await self._republish(plan.replay[0])
            if isinstance(record, web.Response):
                return record
            # Read-your-writes: the next list shows it replayed before the topic says so.
            self.ops.replays.apply(letter_id, record)
        return web.json_response({"replayed": record})

    async def _republish(self, entry: Any) -> dict[str, Any] | web.Response:
        d = entry.letter
        headers = [(h.key, h.value if h.value is not None else b"") for h in d.headers]
        headers.append((REPLAYED_FROM_HEADER, entry.dead_letter_id.encode()))
        try:
            meta = await self.publisher.publish_raw(d.source_topic, d.value, d.key, headers)
            record = replay_record(
                entry,
                datetime.fromtimestamp(self.clock(), UTC),
                meta.partition,
                meta.offset,
                f"console@{self.instance}",
            )
            await self.publisher.publish_raw(
                topic_name(DLQ_REPLAYS, self.prefix),
                json.dumps(record).encode(),
                entry.dead_letter_id.encode(),
                [("content-type", b"application/json")],
            )
        except (SynodError, KafkaError, OSError) as exc:
            return _error(
                503,
                "broker_unavailable",
                f"replaying {entry.dead_letter_id} failed: the broker did not take it; "
                "try again (a copy without its replay record is dropped as a duplicate)",
                {"id": entry.dead_letter_id, "error": repr(exc)[:300]},
            )
        return record


def workspace_json(folded: Materialised) -> dict[str, Any]:
    """A folded workspace for the console: files, conflicts (open and merged), rejections."""

    def sibling(s: Any) -> dict[str, Any]:
        return {
            "write_id": s.write_id,
            "step_id": s.step_id,
            "writer": s.writer,
            "chars": len(s.content),
        }

    return {
        "mode": folded.mode,
        "writes": folded.writes,
        "files": [
            {
                "path": path,
                "chars": len(content),
                "content": content[:WORKSPACE_CONTENT_CHARS],
                "steps": sorted(folded.steps.get(path, ())),
                "conflicted": False,
            }
            for path, content in sorted(folded.files.items())
        ]
        + [
            {
                "path": path,
                "chars": max((len(s.content) for s in siblings), default=0),
                "content": "",
                "steps": sorted(folded.steps.get(path, ())),
                "conflicted": True,
            }
            for path, siblings in sorted(folded.conflicted.items())
        ],
        "conflicts": [
            {
                "conflict_id": c.conflict_id,
                "path": c.path,
                "open": c.open,
                "siblings": [sibling(s) for s in c.siblings],
                "resolved_by": c.resolved_by,
                "resolver": c.resolver,
                "chosen": c.chosen,
                "discarded": list(c.discarded),
            }
            for c in folded.conflicts
        ],
        "rejected": [
            {"write_id": r.write_id, "path": r.path, "reason": r.reason} for r in folded.rejected
        ],
        "superseded": [
            {"write_id": s.write_id, "path": s.path, "step_id": s.step_id, "winner": s.winner}
            for s in folded.superseded
        ],
        "lost": list(folded.lost),
    }


def _int_param(text: str | None, default: int) -> int | None:
    if text is None:
        return default
    with contextlib.suppress(ValueError):
        value = int(text)
        if 1 <= value <= LIST_LIMIT:
            return value
    return None


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _unknown_task(task_id: str) -> web.Response:
    return _error(
        404,
        "not_found",
        f"no task {task_id!r} is known to this gateway (a task submitted elsewhere shows up "
        "once the planner has logged it)",
        {"task_id": task_id},
    )


def _unknown_letter(letter_id: str) -> web.Response:
    return _error(
        404,
        "not_found",
        f"no dead letter {letter_id!r} in this gateway's view of synod.dlq",
        {"id": letter_id},
    )


__all__ = [
    "CONSOLE_PATHS",
    "STATIC_FILES",
    "RawPublisher",
    "WorkspaceReader",
    "add_console_routes",
    "is_console_path",
    "same_origin_actions",
    "workspace_json",
]
