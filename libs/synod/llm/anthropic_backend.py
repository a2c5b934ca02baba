"""The Claude backend: the official anthropic SDK (AsyncAnthropic), plain or streamed.

Retries of 408/409/429/5xx/529 and connection errors are the SDK's (`max_retries`,
default 2), and the SDK waits as long as a `retry-after` header says, with no
upper bound of its own. A middleware here caps that: a retryable reply asking
for more than `max_retry_after_s` is not retried by the SDK but raised at once
as `LLMTransientError` with `retry_after_s`, so the caller's breaker can decide.

`timeout_s` is the SDK's per-attempt timeout, and httpx2 applies it to each
read, so a stream that keeps trickling bytes never times out: bound the whole
call with the step's deadline.

Sampling parameters are not sent: SDK 2.x speaks API version 2026-10-21, which
rejects `temperature` (as do Sonnet 5 and later at any non-default value). A
configured temperature is logged once and ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
from anthropic.types import AssistantMessageParam, Message, MessageParam, UserMessageParam
from pydantic import SecretStr

from synod.llm import sdk_errors
from synod.llm.pricing import PRICES, Price, cost_usd
from synod.llm.settings import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER_S,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT_S,
)
from synod.llm.structured import RawReply, Turn, complete_structured
from synod.llm.types import LLMRequest, LLMResponse
from synod.wire.messages import Usage

log = logging.getLogger("synod.llm.anthropic")


@dataclass
class _CallStats:
    retries: int = 0


# Per-call state for the middleware, which the SDK shares between concurrent calls.
_call_stats: ContextVar[_CallStats | None] = ContextVar("synod_llm_call_stats", default=None)


def _sdk_would_retry(response: httpx2.Response) -> bool:
    # Mirrors the SDK's own policy (anthropic._base_client._should_retry).
    should_retry = response.headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        return should_retry == "true"
    return response.status_code in (408, 409, 429) or response.status_code >= 500


def _error_object(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _requested_model(request: anthropic.APIRequest) -> str:
    body = request.json
    return str(body.get("model", "")) if isinstance(body, dict) else ""


def _message_param(turn: Turn) -> MessageParam:
    if turn.role == "user":
        return UserMessageParam(role="user", content=turn.content)
    return AssistantMessageParam(role="assistant", content=turn.content)


class _RetryGuard(anthropic.Middleware):
    """Counts the SDK's retries, and stops it sleeping on a retry-after above the cap."""

    def __init__(self, max_retry_after_s: float) -> None:
        self.max_retry_after_s = max_retry_after_s

    async def handle_async(
        self, request: anthropic.APIRequest, call_next: anthropic.AsyncCallNext
    ) -> anthropic.AsyncAPIResponse[Any]:
        stats = _call_stats.get()
        if stats is not None and request.retries_taken > 0:
            stats.retries += 1
        response: anthropic.AsyncAPIResponse[Any] = await call_next(request)
        http = response.http_response
        if http.is_success or not _sdk_would_retry(http):
            return response
        retry_after_s = sdk_errors.parse_retry_after(http.headers)
        if retry_after_s is None or retry_after_s <= self.max_retry_after_s:
            return response
        await http.aread()
        error = _error_object(http)
        raise sdk_errors.error_for_status(
            http.status_code,
            error_type=error.get("type"),
            message=f"{error.get('message', '')} (retry-after {retry_after_s:g} s is above "
            f"the {self.max_retry_after_s:g} s the SDK may wait)",
            model=_requested_model(request),
            retry_after_s=retry_after_s,
        )


class AnthropicBackend:
    """An `LLMBackend` calling Claude through the official SDK."""

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str | SecretStr,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S,
        stream: bool = False,
        prices: Mapping[str, Price] = PRICES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.stream = stream
        self.prices = prices
        self._clock = clock
        self._warned: set[str] = set()
        self._client = anthropic.AsyncAnthropic(
            api_key=key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
            middleware=[_RetryGuard(max_retry_after_s)],
        )

    def describe(self) -> str:
        mode = "streamed" if self.stream else "plain"
        return f"model {self.model}, {mode}, timeout {self.timeout_s:g} s"

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        model = request.model or self.model
        max_tokens = request.max_tokens or self.max_tokens
        timeout_s = request.timeout_s or self.timeout_s
        if request.temperature is not None or self.temperature is not None:
            self._warn_once(
                "temperature",
                "temperature %s is not sent: the Messages API version of SDK 2.x rejects "
                "sampling parameters",
                request.temperature if request.temperature is not None else self.temperature,
            )

        async def generate(system: str, turns: Sequence[Turn]) -> RawReply:
            messages = [_message_param(turn) for turn in turns]
            log.debug(
                "llm call",
                extra={
                    "task_id": request.task_id,
                    "step_id": request.step_id,
                    "model": model,
                    "turns": len(turns),
                    "prompt_chars": len(system) + sum(len(t.content) for t in turns),
                },
            )
            try:
                message = await self._send(model, max_tokens, timeout_s, system, messages)
            except sdk_errors.MAPPED_ERRORS as err:
                raise sdk_errors.map_sdk_error(err, model=model) from err
            return self._reply(message, model)

        stats = _CallStats()
        token = _call_stats.set(stats)
        started = self._clock()
        try:
            result = await complete_structured(
                generate,
                system=request.system,
                prompt=request.prompt,
                output_model=request.output_model,
            )
        finally:
            _call_stats.reset(token)
        return LLMResponse(
            text=result.text,
            parsed=result.parsed,
            usage=result.usage,
            model=result.usage.model or model,
            latency_s=self._clock() - started,
            stop_reason=result.stop_reason,
            retries=stats.retries,
        )

    async def _send(
        self,
        model: str,
        max_tokens: int,
        timeout_s: float,
        system: str,
        messages: list[MessageParam],
    ) -> object:
        system_param = system if system else anthropic.omit
        if not self.stream:
            return await self._client.messages.create(
                model=model,
                max_tokens=max_tokens,
                system=system_param,
                messages=messages,
                timeout=timeout_s,
            )
        async with self._client.messages.stream(
            model=model,
            max_tokens=max_tokens,
            system=system_param,
            messages=messages,
            timeout=timeout_s,
        ) as stream:
            return await stream.get_final_message()

    def _reply(self, message: object, model: str) -> RawReply:
        # The SDK does not validate replies: a JSON body of the wrong shape becomes a
        # Message full of None, and a non-JSON content type comes back as a str.
        if (
            not isinstance(message, Message)
            or not isinstance(message.content, list)
            or message.usage is None
        ):
            shown = type(message).__name__
            raise sdk_errors.malformed_response(f"got {shown} without content/usage", model=model)
        text = "".join(block.text for block in message.content if block.type == "text")
        served = message.model or model
        usage = message.usage
        cache_write = usage.cache_creation_input_tokens or 0
        cache_read = usage.cache_read_input_tokens or 0
        cost = cost_usd(
            served,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_write_tokens=cache_write,
            cache_read_tokens=cache_read,
            prices=self.prices,
        )
        if cost is None:
            self._warn_once(served, "no price for anthropic:%s: its calls are unpriced", served)
        return RawReply(
            text=text,
            usage=Usage(
                model=served,
                calls=1,
                input_tokens=usage.input_tokens + cache_write + cache_read,
                output_tokens=usage.output_tokens,
                cost_usd=cost or 0.0,
                unpriced_calls=0 if cost is not None else 1,
            ),
            stop_reason=message.stop_reason,
        )

    async def aclose(self) -> None:
        await self._client.close()
