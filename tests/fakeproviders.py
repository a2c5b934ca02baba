"""Fake provider APIs on 127.0.0.1, for testing the real SDKs over real HTTP.

Shared by the LLM integration tests (fixtures in tests/integration/llm/conftest.py)
and the end-to-end tests, whose service processes reach them over 127.0.0.1.

`fake_api` is Anthropic's Messages API (synod.dev.fakeprovider, which `synod chaos
provider` also strikes), `fake_openai` an OpenAI-compatible
Chat Completions API. Each test scripts the replies in order
(`fake_api.reply_message(...)` / `fake_openai.reply_completion(...)`,
`reply_error`, `reply_stream`, `reply_raw`, `reply_hang`) and reads back what the
server received in `.requests`. A request with nothing scripted gets a
500 that says so, so a test that sends more requests than it expected fails.
"""

from __future__ import annotations

from typing import Any

from synod.dev.fakeprovider import (
    DEFAULT_MODEL,
    FakeMessagesAPI,
    Reply,
    Seen,
    error_body,
    message_body,
)

__all__ = [
    "DEFAULT_MODEL",
    "FakeChatCompletionsAPI",
    "FakeMessagesAPI",
    "Reply",
    "Seen",
    "completion_body",
    "error_body",
    "message_body",
    "openai_error_body",
]

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
