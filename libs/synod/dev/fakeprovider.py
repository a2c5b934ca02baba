"""A fake Anthropic Messages API on 127.0.0.1: the real SDK over real HTTP, and provider outages.

Tests script its replies in order (`reply_message`, `reply_error`, `reply_stream`,
`reply_raw`, `reply_hang`, or a `responder` for every unscripted request) and read
back what it received in `.requests`; tests/fakeproviders.py re-exports it beside
the OpenAI-compatible fake. It lives here, not under tests, because `synod chaos
provider` strikes it: `POST /_synod/outage {"seconds": S}` makes every Messages
request fail with 529 `overloaded_error` for S seconds, as the real API does when
it is overloaded. `python -m synod.dev.fakeprovider --port P` serves one for a
team started by `synod up` (route the workers to it with ANTHROPIC_BASE_URL and
SYNOD_MODEL_RESEARCHER / SYNOD_MODEL_CODER); it answers each request with valid
output for the schema the system prompt names.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

OUTAGE_PATH = "/_synod/outage"

DEFAULT_MODEL = "claude-sonnet-5-5"


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    events: list[tuple[str | None, Any]] | None = None  # (SSE event name, data)
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # before sending anything, or, with events, after sending them


def message_body(
    text: str,
    *,
    model: str = DEFAULT_MODEL,
    input_tokens: int = 12,
    output_tokens: int = 7,
    stop_reason: str = "end_turn",
) -> dict[str, Any]:
    return {
        "id": "msg_fake_0001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


class FakeMessagesAPI:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._replies: deque[Reply] = deque()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        # Answers every request that has no scripted reply (a test of a
        # behaviour over time, such as an outage of one model, sets it).
        self.responder: Callable[[Seen], Reply] | None = None
        # Hung requests whose client went away (a call cancelled at its deadline).
        self.disconnected = 0
        # Until this monotonic time every Messages request gets a 529 (an outage).
        self.outage_until = 0.0
        self.refused_in_outage = 0

    # ------------------------------------------------------------ scripting

    def reply_message(self, text: str, **fields: Any) -> None:
        self._replies.append(Reply(body=message_body(text, **fields)))

    def reply_error(
        self, status: int, error_type: str, message: str = "", headers: dict[str, str] | None = None
    ) -> None:
        body = error_body(error_type, message or f"fake {error_type}")
        self._replies.append(Reply(status=status, body=body, headers=headers or {}))

    def reply_raw(
        self, raw: bytes, *, status: int = 200, content_type: str = "application/json"
    ) -> None:
        self._replies.append(Reply(status=status, raw=raw, headers={"content-type": content_type}))

    def reply_hang(self) -> None:
        self._replies.append(Reply(hang=True))

    def reply_stream(
        self,
        text: str,
        *,
        model: str = DEFAULT_MODEL,
        input_tokens: int = 12,
        output_tokens: int = 7,
        chunks: int = 3,
        error: tuple[str, str] | None = None,
        stall: bool = False,
    ) -> None:
        """A streamed reply in the Messages streaming event format.

        With `error` (type, message), the stream breaks off after the first
        delta with an `error` event, as the API does when it overloads mid-stream.
        With `stall`, it sends nothing more after the first delta, and hangs.
        """
        size = max(1, -(-len(text) // chunks))
        pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        start = message_body("", model=model, input_tokens=input_tokens, output_tokens=1)
        start.update(content=[], stop_reason=None)
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            ("ping", {"type": "ping"}),
        ]
        for piece in pieces:
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            )
            if error is not None:
                events.append(("error", error_body(*error)))
            if error is not None or stall:
                self._replies.append(Reply(events=events, hang=stall))
                return
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        self._replies.append(Reply(events=events))

    # Replies for a `responder` to return (test modules cannot import this conftest).
    @staticmethod
    def message_reply(text: str, **fields: Any) -> Reply:
        return Reply(body=message_body(text, **fields))

    @staticmethod
    def error_reply(status: int, error_type: str, message: str = "") -> Reply:
        return Reply(status=status, body=error_body(error_type, message or f"fake {error_type}"))

    @staticmethod
    def unscripted_body() -> dict[str, Any]:
        return error_body("api_error", "fake server: no reply scripted for this request")

    @property
    def unused_replies(self) -> int:
        return len(self._replies)

    # ------------------------------------------------------------ serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        self.requests.append(
            Seen(
                request.method,
                request.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        if time.monotonic() < self.outage_until:
            self.refused_in_outage += 1
            return web.json_response(
                error_body("overloaded_error", "fake server: provider outage"), status=529
            )
        if not self._replies and self.responder is not None:
            self._replies.append(self.responder(self.requests[-1]))
        if not self._replies:
            return web.json_response(
                self.unscripted_body(),
                status=500,
            )
        reply = self._replies.popleft()
        if reply.hang and reply.events is None:
            # Bounded by the server's stop, which sets _release.
            while not self._release.is_set():
                if request.transport is None or request.transport.is_closing():
                    self.disconnected += 1
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._release.wait(), 0.02)
            return web.Response(status=503)
        if reply.events is not None:
            response = web.StreamResponse(
                status=reply.status, headers={"content-type": "text/event-stream", **reply.headers}
            )
            await response.prepare(request)
            for event, data in reply.events:
                head = f"event: {event}\n" if event else ""
                text = data if isinstance(data, str) else json.dumps(data)
                await response.write(f"{head}data: {text}\n\n".encode())
            if reply.hang:
                await self._release.wait()
            # The client may have given up on a stalled stream; that is the point of a stall.
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
            return response
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    def outage(self, seconds: float) -> None:
        self.outage_until = time.monotonic() + seconds

    async def _handle_outage(self, request: web.Request) -> web.Response:
        try:
            seconds = float((await request.json())["seconds"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            return web.json_response(
                {"error": 'send {"seconds": S} with S a number from 0 to 3600'}, status=400
            )
        if not 0 <= seconds <= 3600:
            return web.json_response({"error": "seconds must be from 0 to 3600"}, status=400)
        self.outage(seconds)
        return web.json_response({"outage_s": seconds})

    PATH = "/v1/messages"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post(self.PATH, self._handle)
        app.router.add_post(OUTAGE_PATH, self._handle_outage)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        self._release.set()  # lets hung handlers finish, so shutdown does not wait on them
        if self._runner is not None:
            await self._runner.cleanup()


# Valid worker output for the schema a system prompt names (the researcher's notes
# or the coder's files), so a served fake answers a team's worker calls.
_NOTES = {"summary": "what is known", "findings": ["one finding"]}
_CODE = {"files": [{"path": "app/main.py", "content": "def solve():\n    return 1\n"}]}


def worker_answer(seen: Seen) -> Reply:
    system = seen.body.get("system", "") if isinstance(seen.body, dict) else ""
    text = system if isinstance(system, str) else json.dumps(system)
    model = seen.body.get("model", DEFAULT_MODEL) if isinstance(seen.body, dict) else DEFAULT_MODEL
    return FakeMessagesAPI.message_reply(
        json.dumps(_CODE if '"files"' in text else _NOTES), model=model
    )


async def _serve(port: int) -> None:
    api = FakeMessagesAPI()
    api.responder = worker_answer
    await api.start(port)
    print(f"fake Messages API at {api.url} (outages: POST {api.url}{OUTAGE_PATH})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await api.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m synod.dev.fakeprovider",
        description="Serve a fake Anthropic Messages API on 127.0.0.1 for a local team.",
    )
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
