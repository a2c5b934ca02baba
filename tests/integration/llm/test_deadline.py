"""A call hung at the provider is cancelled at the step's deadline, and really stops.

The real SDK, over real HTTP, against a fake server that never answers. "Really
stops" is checked from the server's side: the connection is closed, not left
open for the SDK's own (much longer) timeout.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from synod.llm import LLMRequest, LLMSettings, LLMTimeoutError, select_backend
from synod.resilience.registry import BREAKERS

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
