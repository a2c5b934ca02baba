"""The openai backend, with the real openai SDK, over real HTTP, against a fake
OpenAI-compatible Chat Completions server: the cases the anthropic backend is tested on.

No test here asserts on elapsed time: retries are checked by what the server saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from synod.llm import (
    LLMBudgetError,
    LLMPermanentError,
    LLMRequest,
    LLMTimeoutError,
    LLMTransientError,
    ResearchNotes,
)
from synod.llm.openai_backend import OpenAIBackend

VALID_NOTES = '{"summary": "fine", "findings": ["one", "two"]}'
MODEL = "gpt-4.1-mini"  # $0.4 in, $1.6 out, $0.1 cached in, per million tokens

MakeBackend = Callable[..., OpenAIBackend]


@pytest.fixture
async def make_backend(fake_openai: Any) -> AsyncIterator[MakeBackend]:
    made: list[OpenAIBackend] = []

    def make(**overrides: Any) -> OpenAIBackend:
        options: dict[str, Any] = {
            "api_key": "sk-test-key",
            "base_url": f"{fake_openai.url}/v1",
            "model": MODEL,
            "max_retries": 0,
            "timeout_s": 5.0,
        }
        options.update(overrides)
        backend = OpenAIBackend(**options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


def request(**fields: Any) -> LLMRequest:
    fields.setdefault("role", "researcher")
    fields.setdefault("task_id", "task-1")
    fields.setdefault("step_id", "step-1")
    fields.setdefault("prompt", "What is known about consensus?")
    return LLMRequest(**fields)


async def test_plain_reply_with_usage_and_cost(fake_openai: Any, make_backend: MakeBackend) -> None:
    fake_openai.reply_completion(
        "Hello.", prompt_tokens=1_000, completion_tokens=500, cached_tokens=200
    )
    response = await make_backend(max_tokens=256).complete(
        request(system="You are terse.", max_tokens=100)
    )
    assert response.text == "Hello."
    assert response.parsed is None
    assert response.stop_reason == "stop"
    assert response.usage.calls == 1
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1_000, 500)
    assert response.usage.cost_usd == pytest.approx((800 * 0.4 + 200 * 0.1 + 500 * 1.6) / 1e6)
    assert response.usage.unpriced_calls == 0
    assert response.model == MODEL
    (seen,) = fake_openai.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-test-key"
    assert seen.body["model"] == MODEL
    assert seen.body["max_tokens"] == 100
    assert seen.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is known about consensus?"},
    ]
    assert "temperature" not in seen.body
    assert "stream" not in seen.body


async def test_temperature_and_the_max_tokens_field_follow_the_settings(
    fake_openai: Any, make_backend: MakeBackend
) -> None:
    fake_openai.reply_completion("ok")
    fake_openai.reply_completion("ok")
    await make_backend(max_tokens_param="max_completion_tokens").complete(request(temperature=0.7))
    await make_backend(send_temperature=False).complete(request(temperature=0.7))
    first, second = (seen.body for seen in fake_openai.requests)
    assert (first["temperature"], first["max_completion_tokens"]) == (0.7, 4096)
    assert "max_tokens" not in first
    assert "temperature" not in second


async def test_streamed_reply_with_usage(fake_openai: Any, make_backend: MakeBackend) -> None:
    fake_openai.reply_stream("Streamed in pieces.", prompt_tokens=40, completion_tokens=9, chunks=4)
    response = await make_backend(stream=True).complete(request())
    assert response.text == "Streamed in pieces."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (40, 9)
    assert response.usage.cost_usd == pytest.approx((40 * 0.4 + 9 * 1.6) / 1e6)
    body = fake_openai.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_a_stream_without_usage_is_unpriced_not_free(
    fake_openai: Any, make_backend: MakeBackend
) -> None:
    # Servers that ignore stream_options.include_usage send no usage chunk.
    fake_openai.reply_stream("no usage here", usage=False)
    response = await make_backend(stream=True).complete(request())
    assert response.text == "no usage here"
    assert (response.usage.calls, response.usage.unpriced_calls) == (1, 1)
    assert response.usage.cost_usd == 0.0


async def test_429_with_retry_after_is_retried_by_the_sdk(
    fake_openai: Any, make_backend: MakeBackend
) -> None:
    fake_openai.reply_error(429, "rate_limit_exceeded", headers={"retry-after": "0.05"})
    fake_openai.reply_completion("after the wait")
    response = await make_backend(max_retries=2).complete(request())
    assert response.text == "after the wait"
    assert response.retries == 1
    assert [r.headers["x-stainless-retry-count"] for r in fake_openai.requests] == ["0", "1"]
    assert fake_openai.requests[0].body == fake_openai.requests[1].body


async def test_retry_after_above_the_cap_is_not_waited_for_by_the_sdk(
    fake_openai: Any, make_backend: MakeBackend
) -> None:
    # 90 s: below the SDK's own 120 s ceiling, above ours.
    fake_openai.reply_error(429, "rate_limit_exceeded", headers={"retry-after": "90"})
    fake_openai.reply_completion("never asked for")
    backend = make_backend(max_retries=2, max_retry_after_s=30.0)
    with pytest.raises(LLMTransientError) as caught:
        await backend.complete(request())
    assert (caught.value.reason, caught.value.status) == ("rate_limited", 429)
    assert caught.value.retry_after_s == 90.0
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize(("status", "reason"), [(500, "server_error"), (503, "overloaded")])
async def test_5xx_until_retries_run_out_is_transient(
    fake_openai: Any, make_backend: MakeBackend, status: int, reason: str
) -> None:
    for _ in range(2):
        fake_openai.reply_error(status, headers={"retry-after": "0.05"})
    with pytest.raises(LLMTransientError) as caught:
        await make_backend(max_retries=1).complete(request())
    assert (caught.value.reason, caught.value.status) == (reason, status)
    assert caught.value.retry_after_s == 0.05
    assert len(fake_openai.requests) == 2


async def test_insufficient_quota_is_a_budget_error_not_a_rate_limit(
    fake_openai: Any, make_backend: MakeBackend
) -> None:
    fake_openai.reply_error(429, "insufficient_quota", "You exceeded your current quota")
    with pytest.raises(LLMBudgetError) as caught:
        await make_backend(max_retries=0).complete(request())
    assert caught.value.reason == "spend_limit"


async def test_400_is_permanent_and_not_retried(
    fake_openai: Any, make_backend: MakeBackend
) -> None:
    fake_openai.reply_error(400, "context_length_exceeded", "maximum context length is 128000")
    with pytest.raises(LLMPermanentError) as caught:
        await make_backend(max_retries=2).complete(request())
    assert caught.value.reason == "bad_request"
    assert "maximum context length" in str(caught.value)
    assert len(fake_openai.requests) == 1


async def test_hung_response_times_out(fake_openai: Any, make_backend: MakeBackend) -> None:
    fake_openai.reply_hang()
    with pytest.raises(LLMTimeoutError) as caught:
        await make_backend(timeout_s=0.5).complete(request())
    assert caught.value.error_class == "transient"
    assert len(fake_openai.requests) == 1


async def test_stream_stalled_midway_times_out(fake_openai: Any, make_backend: MakeBackend) -> None:
    fake_openai.reply_stream("partial answer", stall=True)
    with pytest.raises(LLMTimeoutError):
        await make_backend(stream=True, timeout_s=0.5).complete(request())


async def test_an_error_inside_a_stream_is_transient(
    fake_openai: Any, make_backend: MakeBackend
) -> None:
    fake_openai.reply_stream("partial answer", error="The server had an error")
    with pytest.raises(LLMTransientError) as caught:
        await make_backend(stream=True).complete(request())
    assert caught.value.reason == "server_error"


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"id": "chatcmpl-1", "object": "chat.comp', "application/json"),  # cut off
        (b'{"unexpected": true}', "application/json"),  # JSON, not a completion
        (b"<html>Bad gateway</html>", "text/html"),
    ],
)
async def test_malformed_body_is_a_transient_malformed_response(
    fake_openai: Any, make_backend: MakeBackend, raw: bytes, content_type: str
) -> None:
    fake_openai.reply_raw(raw, content_type=content_type)
    with pytest.raises(LLMTransientError) as caught:
        await make_backend().complete(request())
    assert caught.value.reason == "malformed_response"


async def test_connection_refused_is_transient(
    closed_port_url: str, make_backend: MakeBackend
) -> None:
    with pytest.raises(LLMTransientError) as caught:
        await make_backend(base_url=f"{closed_port_url}/v1").complete(request())
    assert caught.value.reason == "connection"


async def test_structured_output_and_json_mode(fake_openai: Any, make_backend: MakeBackend) -> None:
    fake_openai.reply_completion(f"```json\n{VALID_NOTES}\n```")
    response = await make_backend(response_format="json_object").complete(
        request(output_model=ResearchNotes)
    )
    assert response.output(ResearchNotes).findings == ["one", "two"]
    body = fake_openai.requests[0].body
    assert '"summary"' in body["messages"][0]["content"]
    assert body["response_format"] == {"type": "json_object"}


async def test_invalid_structured_output_repaired_on_the_second_call(
    fake_openai: Any, make_backend: MakeBackend
) -> None:
    fake_openai.reply_completion(
        '{"findings": ["no summary"]}', prompt_tokens=100, completion_tokens=10
    )
    fake_openai.reply_completion(VALID_NOTES, prompt_tokens=150, completion_tokens=20)
    response = await make_backend().complete(request(output_model=ResearchNotes))
    assert response.output(ResearchNotes).summary == "fine"
    assert response.usage.calls == 2
    assert (response.usage.input_tokens, response.usage.output_tokens) == (250, 30)
    assert response.usage.cost_usd == pytest.approx((250 * 0.4 + 30 * 1.6) / 1e6)
    repair = fake_openai.requests[1].body["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == '{"findings": ["no summary"]}'
    assert "summary: Field required" in repair[3]["content"]


async def test_invalid_structured_output_twice_is_permanent(
    fake_openai: Any, make_backend: MakeBackend
) -> None:
    fake_openai.reply_completion("I would rather talk about something else.")
    fake_openai.reply_completion('{"summary": ""}')
    with pytest.raises(LLMPermanentError) as caught:
        await make_backend().complete(request(output_model=ResearchNotes))
    assert caught.value.reason == "invalid_output"
    assert caught.value.usage.calls == 2
    assert caught.value.usage.cost_usd > 0
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"refusal": "I can't help with that.", "text": ""},
        {"finish_reason": "content_filter", "text": ""},
    ],
)
async def test_refusal_is_permanent(
    fake_openai: Any, make_backend: MakeBackend, fields: dict[str, Any]
) -> None:
    text = fields.pop("text")
    fake_openai.reply_completion(text, **fields)
    with pytest.raises(LLMPermanentError) as caught:
        await make_backend().complete(request(output_model=ResearchNotes))
    assert caught.value.reason == "refusal"
    assert len(fake_openai.requests) == 1


async def test_unpriced_model_is_counted_as_unpriced(
    fake_openai: Any, make_backend: MakeBackend
) -> None:
    fake_openai.reply_completion("ok", model="llama3.1:8b")
    response = await make_backend().complete(request(model="llama3.1:8b"))
    assert response.usage.model == "llama3.1:8b"
    assert (response.usage.cost_usd, response.usage.unpriced_calls) == (0.0, 1)
    assert response.usage.input_tokens > 0


async def test_selected_from_the_environment_without_a_key(
    fake_openai: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A local server (Ollama, llama.cpp) needs no key: the base URL alone selects it.
    from synod.llm import select_backend

    for name in ("SYNOD_LLM_BACKEND", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "SYNOD_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYNOD_OPENAI_BASE_URL", f"{fake_openai.url}/v1")
    monkeypatch.setenv("SYNOD_OPENAI_MODEL", "llama3.1:8b")
    lines: list[str] = []
    backend = select_backend(notice=lines.append)
    try:
        fake_openai.reply_completion("from env", model="llama3.1:8b")
        response = await backend.complete(request())
    finally:
        await backend.aclose()
    assert response.text == "from env"
    assert response.route is not None
    assert (response.route.provider, response.route.model) == ("openai", "llama3.1:8b")
    assert fake_openai.requests[0].body["model"] == "llama3.1:8b"
    assert lines[0].startswith("llm: openai backend (SYNOD_OPENAI_BASE_URL is set)")
