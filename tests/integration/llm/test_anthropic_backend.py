"""The anthropic backend, with the real SDK, over real HTTP, against the fake Messages API.

No test here asserts on elapsed time: retries are checked by what the server saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from synod.llm import (
    LLMPermanentError,
    LLMRequest,
    LLMTimeoutError,
    LLMTransientError,
    ResearchNotes,
)
from synod.llm.anthropic_backend import AnthropicBackend

VALID_NOTES = '{"summary": "fine", "findings": ["one", "two"]}'

MakeBackend = Callable[..., AnthropicBackend]


@pytest.fixture
async def make_backend(fake_api: Any) -> AsyncIterator[MakeBackend]:
    made: list[AnthropicBackend] = []

    def make(**overrides: Any) -> AnthropicBackend:
        options: dict[str, Any] = {
            "api_key": "sk-test-key",
            "base_url": fake_api.url,
            "model": "claude-sonnet-5-5",
            "max_retries": 0,
            "timeout_s": 5.0,
        }
        options.update(overrides)
        backend = AnthropicBackend(**options)
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


async def test_plain_reply_with_usage_and_cost(fake_api: Any, make_backend: MakeBackend) -> None:
    fake_api.reply_message("Hello.", input_tokens=1_000, output_tokens=500)
    response = await make_backend(max_tokens=256).complete(
        request(system="You are terse.", max_tokens=100)
    )
    assert response.text == "Hello."
    assert response.parsed is None
    assert response.stop_reason == "end_turn"
    assert response.usage.calls == 1
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1_000, 500)
    # claude-sonnet-5-5 at $2 / $10 per million tokens
    assert response.usage.cost_usd == pytest.approx((1_000 * 2 + 500 * 10) / 1e6)
    assert response.model == "claude-sonnet-5-5"
    (seen,) = fake_api.requests
    assert seen.path == "/v1/messages"
    assert seen.headers["authorization"] == "Bearer sk-test-key"
    assert seen.body["model"] == "claude-sonnet-5-5"
    assert seen.body["max_tokens"] == 100
    assert seen.body["system"] == "You are terse."
    assert seen.body["messages"] == [{"role": "user", "content": "What is known about consensus?"}]
    assert "temperature" not in seen.body


async def test_temperature_is_never_sent(fake_api: Any, make_backend: MakeBackend) -> None:
    fake_api.reply_message("ok")
    await make_backend(temperature=0.2).complete(request(temperature=0.9))
    assert "temperature" not in fake_api.requests[0].body


async def test_streamed_reply(fake_api: Any, make_backend: MakeBackend) -> None:
    fake_api.reply_stream("Streamed in pieces.", input_tokens=40, output_tokens=9, chunks=4)
    response = await make_backend(stream=True).complete(request())
    assert response.text == "Streamed in pieces."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (40, 9)
    assert response.usage.cost_usd > 0
    assert fake_api.requests[0].body["stream"] is True


async def test_429_with_retry_after_is_retried_by_the_sdk(
    fake_api: Any, make_backend: MakeBackend
) -> None:
    fake_api.reply_error(429, "rate_limit_error", headers={"retry-after": "0.05"})
    fake_api.reply_message("after the wait")
    response = await make_backend(max_retries=2).complete(request())
    assert response.text == "after the wait"
    assert response.retries == 1
    assert [r.headers["x-stainless-retry-count"] for r in fake_api.requests] == ["0", "1"]
    assert fake_api.requests[0].body == fake_api.requests[1].body


async def test_retries_are_counted_over_the_repair_turn_too(
    fake_api: Any, make_backend: MakeBackend
) -> None:
    fake_api.reply_error(529, "overloaded_error", headers={"retry-after": "0.01"})
    fake_api.reply_message("not json")
    fake_api.reply_error(429, "rate_limit_error", headers={"retry-after": "0.01"})
    fake_api.reply_message(VALID_NOTES)
    response = await make_backend(max_retries=2).complete(request(output_model=ResearchNotes))
    assert response.retries == 2
    assert response.usage.calls == 2
    assert [r.headers["x-stainless-retry-count"] for r in fake_api.requests] == ["0", "1", "0", "1"]


async def test_retry_after_above_the_cap_is_not_waited_for_by_the_sdk(
    fake_api: Any, make_backend: MakeBackend
) -> None:
    fake_api.reply_error(429, "rate_limit_error", headers={"retry-after": "3600"})
    fake_api.reply_message("never asked for")
    backend = make_backend(max_retries=2, max_retry_after_s=30.0)
    with pytest.raises(LLMTransientError) as caught:
        await backend.complete(request())
    assert (caught.value.reason, caught.value.status) == ("rate_limited", 429)
    assert caught.value.retry_after_s == 3600.0
    assert len(fake_api.requests) == 1


async def test_529_overloaded_until_retries_run_out(
    fake_api: Any, make_backend: MakeBackend
) -> None:
    for _ in range(2):
        fake_api.reply_error(529, "overloaded_error", headers={"retry-after": "0.05"})
    with pytest.raises(LLMTransientError) as caught:
        await make_backend(max_retries=1).complete(request())
    assert (caught.value.reason, caught.value.status) == ("overloaded", 529)
    assert caught.value.retry_after_s == 0.05
    assert caught.value.error_class == "transient"
    assert len(fake_api.requests) == 2


async def test_500_is_transient(fake_api: Any, make_backend: MakeBackend) -> None:
    fake_api.reply_error(500, "api_error", "Internal server error")
    with pytest.raises(LLMTransientError) as caught:
        await make_backend().complete(request())
    assert (caught.value.reason, caught.value.status) == ("server_error", 500)


async def test_400_is_permanent_and_not_retried(fake_api: Any, make_backend: MakeBackend) -> None:
    fake_api.reply_error(400, "invalid_request_error", "max_tokens: too large")
    with pytest.raises(LLMPermanentError) as caught:
        await make_backend(max_retries=2).complete(request())
    assert caught.value.reason == "bad_request"
    assert "max_tokens: too large" in str(caught.value)
    assert len(fake_api.requests) == 1


async def test_hung_response_times_out(fake_api: Any, make_backend: MakeBackend) -> None:
    fake_api.reply_hang()
    with pytest.raises(LLMTimeoutError) as caught:
        await make_backend(timeout_s=0.5).complete(request())
    assert caught.value.error_class == "transient"
    assert len(fake_api.requests) == 1


async def test_stream_stalled_midway_times_out(fake_api: Any, make_backend: MakeBackend) -> None:
    fake_api.reply_stream("partial answer", stall=True)
    with pytest.raises(LLMTimeoutError):
        await make_backend(stream=True, timeout_s=0.5).complete(request())


async def test_overloaded_error_inside_a_stream_is_transient(
    fake_api: Any, make_backend: MakeBackend
) -> None:
    fake_api.reply_stream("partial answer", error=("overloaded_error", "Overloaded"))
    with pytest.raises(LLMTransientError) as caught:
        await make_backend(stream=True).complete(request())
    assert caught.value.reason == "overloaded"


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"id": "msg_1", "type": "mess', "application/json"),  # cut off
        (b'{"unexpected": true}', "application/json"),  # JSON, not a Message
        (b"<html>Bad gateway</html>", "text/html"),
    ],
)
async def test_malformed_body_is_a_transient_malformed_response(
    fake_api: Any, make_backend: MakeBackend, raw: bytes, content_type: str
) -> None:
    fake_api.reply_raw(raw, content_type=content_type)
    with pytest.raises(LLMTransientError) as caught:
        await make_backend().complete(request())
    assert caught.value.reason == "malformed_response"


async def test_connection_refused_is_transient(
    closed_port_url: str, make_backend: MakeBackend
) -> None:
    with pytest.raises(LLMTransientError) as caught:
        await make_backend(base_url=closed_port_url).complete(request())
    assert caught.value.reason == "connection"


async def test_structured_output_in_code_fences(fake_api: Any, make_backend: MakeBackend) -> None:
    fake_api.reply_message(f"```json\n{VALID_NOTES}\n```")
    response = await make_backend().complete(request(output_model=ResearchNotes))
    assert response.output(ResearchNotes).findings == ["one", "two"]
    assert '"summary"' in fake_api.requests[0].body["system"]


async def test_invalid_structured_output_repaired_on_the_second_call(
    fake_api: Any, make_backend: MakeBackend
) -> None:
    fake_api.reply_message('{"findings": ["no summary"]}', input_tokens=100, output_tokens=10)
    fake_api.reply_message(VALID_NOTES, input_tokens=150, output_tokens=20)
    response = await make_backend().complete(request(output_model=ResearchNotes))
    assert response.output(ResearchNotes).summary == "fine"
    assert response.usage.calls == 2
    assert (response.usage.input_tokens, response.usage.output_tokens) == (250, 30)
    assert response.usage.cost_usd == pytest.approx((250 * 2 + 30 * 10) / 1e6)
    repair = fake_api.requests[1].body["messages"]
    assert [m["role"] for m in repair] == ["user", "assistant", "user"]
    assert repair[1]["content"] == '{"findings": ["no summary"]}'
    assert "summary: Field required" in repair[2]["content"]


async def test_invalid_structured_output_twice_is_permanent(
    fake_api: Any, make_backend: MakeBackend
) -> None:
    fake_api.reply_message("I would rather talk about something else.")
    fake_api.reply_message('{"summary": ""}')
    with pytest.raises(LLMPermanentError) as caught:
        await make_backend().complete(request(output_model=ResearchNotes))
    assert caught.value.reason == "invalid_output"
    assert caught.value.usage.calls == 2
    assert caught.value.usage.cost_usd > 0
    assert len(fake_api.requests) == 2


async def test_refusal_is_permanent(fake_api: Any, make_backend: MakeBackend) -> None:
    fake_api.reply_message("", stop_reason="refusal")
    with pytest.raises(LLMPermanentError) as caught:
        await make_backend().complete(request(output_model=ResearchNotes))
    assert caught.value.reason == "refusal"
    assert len(fake_api.requests) == 1


async def test_unpriced_model_is_named_and_counted_as_unpriced(
    fake_api: Any, make_backend: MakeBackend
) -> None:
    fake_api.reply_message("ok", model="claude-future-9")
    response = await make_backend().complete(request(model="claude-future-9"))
    assert response.usage.model == "claude-future-9"
    assert (response.usage.cost_usd, response.usage.unpriced_calls) == (0.0, 1)
    assert response.usage.input_tokens > 0


async def test_selected_from_the_environment(
    fake_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synod.llm import select_backend

    monkeypatch.delenv("SYNOD_LLM_BACKEND", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.url)
    monkeypatch.setenv("SYNOD_LLM_MODEL", "claude-haiku-4-5")
    lines: list[str] = []
    backend = select_backend(notice=lines.append)
    try:
        fake_api.reply_message("from env", model="claude-haiku-4-5")
        response = await backend.complete(request())
    finally:
        await backend.aclose()
    assert response.text == "from env"
    assert fake_api.requests[0].headers["authorization"] == "Bearer sk-from-env"
    assert fake_api.requests[0].body["model"] == "claude-haiku-4-5"
    assert len(lines) == 1
    assert "anthropic backend" in lines[0]
