"""Fake provider APIs on 127.0.0.1, for testing the real SDKs over real HTTP.

Shared by the LLM integration tests (fixtures in tests/integration/llm/conftest.py)
and the end-to-end tests, whose service processes reach them over 127.0.0.1.

`fake_api` is Anthropic's Messages API, `fake_openai` an OpenAI-compatible
Chat Completions API. Each test scripts the replies in order
(`fake_api.reply_message(...)` / `fake_openai.reply_completion(...)`,
`reply_error`, `reply_stream`, `reply_raw`, `reply_hang`) and reads back what the
server received in `.requests`. A request with nothing scripted gets a
500 that says so, so a test that sends more requests than it expected fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

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

    PATH = "/v1/messages"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.PATH, self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        self._release.set()  # lets hung handlers finish, so shutdown does not wait on them
        if self._runner is not None:
            await self._runner.cleanup()


OPENAI_MODEL = "gpt-4.1-mini"


def completion_body(
    text: str,
    *,
    model: str = OPENAI_MODEL,
    prompt_tokens: int = 12,
    completion_tokens: int = 7,
    cached_tokens: int = 0,
    finish_reason: str = "stop",
    refusal: str | None = None,
    usage: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-fake-0001",
        "object": "chat.completion",
        "created": 1_790_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": refusal},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
    }
    if usage:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
        }
    return body


def openai_error_body(status: int, code: str | None, message: str) -> dict[str, Any]:
    kind = {429: "requests", 401: "invalid_request_error", 400: "invalid_request_error"}
    return {
        "error": {
            "message": message,
            "type": kind.get(status, "server_error"),
            "param": None,
            "code": code,
        }
    }


class FakeChatCompletionsAPI(FakeMessagesAPI):
    """An OpenAI-compatible server (as vLLM, Ollama or OpenRouter serve it)."""

    PATH = "/v1/chat/completions"

    @staticmethod
    def unscripted_body() -> dict[str, Any]:
        return openai_error_body(500, None, "fake server: no reply scripted for this request")

    def reply_completion(self, text: str, **fields: Any) -> None:
        self._replies.append(Reply(body=completion_body(text, **fields)))

    def reply_error(  # type: ignore[override]
        self,
        status: int,
        code: str | None = None,
        message: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        body = openai_error_body(status, code, message or f"fake {status}")
        self._replies.append(Reply(status=status, body=body, headers=headers or {}))

    def reply_stream(  # type: ignore[override]
        self,
        text: str,
        *,
        model: str = OPENAI_MODEL,
        prompt_tokens: int = 12,
        completion_tokens: int = 7,
        chunks: int = 3,
        usage: bool = True,
        error: str | None = None,
        stall: bool = False,
    ) -> None:
        """A streamed reply as Chat Completions streams it: `data:` chunks, then [DONE].

        Usage comes in a last chunk with no choices when `usage` is on (the
        server honours `stream_options.include_usage`). With `error`, the stream
        breaks off after the first delta with an error object; with `stall` it
        sends nothing more after the first delta, and hangs.
        """
        size = max(1, -(-len(text) // chunks))
        pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake-0001",
                "object": "chat.completion.chunk",
                "created": 1_790_000_000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant"}))]
        for piece in pieces:
            events.append((None, chunk({"content": piece})))
            if error is not None:
                events.append((None, openai_error_body(500, None, error)))
            if error is not None or stall:
                self._replies.append(Reply(events=events, hang=stall))
                return
        events.append((None, chunk({}, "stop")))
        if usage:
            last = chunk({})
            last["choices"] = []
            last["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            events.append((None, last))
        events.append((None, "[DONE]"))
        self._replies.append(Reply(events=events))

    @staticmethod
    def completion_reply(text: str, **fields: Any) -> Reply:
        return Reply(body=completion_body(text, **fields))

    @staticmethod
    def openai_error_reply(status: int, code: str | None = None, message: str = "") -> Reply:
        return Reply(status=status, body=openai_error_body(status, code, message or "fake"))
