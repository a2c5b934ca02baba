"""The resilience wrapper over the real SDK and real HTTP, against the fake Messages API.

A call hung at the provider is cancelled at the step's deadline, and really
stops: checked from the server's side, where the connection is closed rather
than left open for the SDK's own (much longer) timeout. A long retry-after
opens the model's breaker, and the fallback serves.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from synod.core.resilience.registry import BREAKERS
from synod.llm import LLMRequest, LLMSettings, LLMTimeoutError, select_backend

MODEL = "claude-sonnet-5-5"


def settings(url: str) -> LLMSettings:
    return LLMSettings(
        backend="anthropic",
        anthropic_api_key="sk-test",
        anthropic_base_url=url,
        model=MODEL,
        max_retries=0,
        timeout_s=600,  # the SDK's own timeout: far beyond any deadline here
    )


def request(**fields: Any) -> LLMRequest:
    return LLMRequest(role="researcher", task_id="t", step_id="s", prompt="p", **fields)


async def wait_disconnected(fake_api: Any, n: int) -> None:
    # Bounded: the server polls its connection every 20 ms.
    for _ in range(500):
        if fake_api.disconnected >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{fake_api.disconnected} of {n} hung requests saw their client go")


@pytest.fixture(autouse=True)
def fresh_breakers() -> None:
    BREAKERS.clear()


async def test_the_request_deadline_cancels_the_http_call(fake_api: Any) -> None:
    fake_api.reply_hang()
    llm = select_backend(settings(fake_api.url), notice=lambda line: None)
    try:
        with pytest.raises(LLMTimeoutError) as caught:
            await llm.complete(request(timeout_s=0.5))
        assert caught.value.error_class == "transient"
        await wait_disconnected(fake_api, 1)
        assert len(fake_api.requests) == 1
        # The breaker heard of it: a timeout is the provider's failure.
        breaker = BREAKERS.breaker(f"anthropic/{MODEL}", llm.breaker_config)
        assert breaker.window(time.monotonic()) == (1, 1)
    finally:
        await llm.aclose()


async def test_the_workers_wait_for_cancels_the_http_call(fake_api: Any) -> None:
    # As the worker does: asyncio.wait_for(llm.complete(...), step.deadline_s).
    fake_api.reply_hang()
    fake_api.reply_message("after the hang")
    llm = select_backend(settings(fake_api.url), notice=lambda line: None)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(llm.complete(request()), 0.5)
        await wait_disconnected(fake_api, 1)
        # The next attempt is a new call that goes through.
        response = await llm.complete(request(attempt=1))
        assert response.text == "after the hang"
    finally:
        await llm.aclose()


async def test_a_long_retry_after_opens_the_breaker_and_the_fallback_serves(
    fake_api: Any,
) -> None:
    # The SDK's retries are capped (SYNOD_LLM_MAX_RETRY_AFTER_S): one request, then ours.
    fake_api.reply_error(429, "rate_limit_error", headers={"retry-after": "3600"})
    fake_api.reply_message("from the fallback", model="claude-haiku-4-5")
    fake_api.reply_message("from the fallback again", model="claude-haiku-4-5")
    config = settings(fake_api.url).model_copy(
        update={"max_retries": 2, "fallback_models": ["claude-haiku-4-5"]}
    )
    llm = select_backend(config, notice=lambda line: None)
    try:
        first = await llm.complete(request())
        second = await llm.complete(request(attempt=1))
        assert (first.text, second.text) == ("from the fallback", "from the fallback again")
        models = [seen.body["model"] for seen in fake_api.requests]
        assert models == [MODEL, "claude-haiku-4-5", "claude-haiku-4-5"]
        assert llm.states()[f"anthropic/{MODEL}"] == "open"
        retry_after = BREAKERS.breaker(f"anthropic/{MODEL}", llm.breaker_config).allow(
            time.monotonic()
        )
        assert 3500 < retry_after.retry_after_s <= 3600
    finally:
        await llm.aclose()
