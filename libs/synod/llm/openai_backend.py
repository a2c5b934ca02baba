"""The OpenAI-compatible backend: the official openai SDK (AsyncOpenAI), Chat Completions.

Any server that speaks the Chat Completions API works: OpenAI itself, vLLM,
Ollama, the llama.cpp server, OpenRouter (`SYNOD_OPENAI_BASE_URL`). The
contract is the anthropic backend's: structured output through
`complete_structured` (one repair turn), usage and cost per call, the SDK's
errors mapped to transient / permanent / budget (synod.llm.openai_errors),
streaming when `stream` is on.

Retries of 408/409/429/5xx and connection errors are the SDK's (`max_retries`).
The SDK honours a `retry-after` of up to 120 s; an httpx2 response hook here
lowers that to `max_retry_after_s`: a retryable reply asking for longer gets
`x-should-retry: false`, so the SDK raises it at once and the caller's breaker
holds that link for as long as the server asked.

A streamed reply asks for usage (`stream_options.include_usage`); a server
that sends none, like a reply without `usage`, leaves the call unpriced
(`Usage.unpriced_calls`), never free.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import httpx2
import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from pydantic import SecretStr

from synod.llm import openai_errors
from synod.llm.pricing import PRICES, Price, cost_usd
from synod.llm.sdk_errors import parse_retry_after
from synod.llm.settings import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER_S,
    DEFAULT_MAX_TOKENS,
    DEFAULT_OPENAI_MODEL,
    DEFAULT_TIMEOUT_S,
)
from synod.llm.structured import RawReply, Turn, complete_structured
from synod.llm.types import LLMRequest, LLMResponse
from synod.wire.messages import Usage

log = logging.getLogger("synod.llm.openai")

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]
ResponseFormat = Literal["text", "json_object", "json_schema"]
# Local servers (Ollama, llama.cpp, vLLM) take any key; the SDK insists on one.
NO_KEY = "no-key"


@dataclass
class _CallStats:
    retries: int = 0


_call_stats: ContextVar[_CallStats | None] = ContextVar("synod_openai_call_stats", default=None)


def _sdk_would_retry(response: httpx2.Response) -> bool:
    # Mirrors the SDK's own policy (openai._base_client._should_retry).
    should_retry = response.headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        return should_retry == "true"
    return response.status_code in (408, 409, 429) or response.status_code >= 500


class _RetryHooks:
    """httpx2 event hooks: count the SDK's retries, and cap the retry-after it waits on."""

    def __init__(self, max_retry_after_s: float) -> None:
        self.max_retry_after_s = max_retry_after_s

    async def on_request(self, request: httpx2.Request) -> None:
        stats = _call_stats.get()
        if stats is not None and request.headers.get("x-stainless-retry-count", "0") != "0":
            stats.retries += 1

    async def on_response(self, response: httpx2.Response) -> None:
        if response.is_success or not _sdk_would_retry(response):
            return
        retry_after_s = parse_retry_after(response.headers)
        if retry_after_s is not None and retry_after_s > self.max_retry_after_s:
            response.headers["x-should-retry"] = "false"


def _message(system: str, turns: Sequence[Turn]) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = []
    if system:
        messages.append({"role": "system", "content": system})
    for turn in turns:
        if turn.role == "user":
            messages.append({"role": "user", "content": turn.content})
        else:
            messages.append({"role": "assistant", "content": turn.content})
    return messages


@dataclass(frozen=True, slots=True)
class _Reply:
    """What one chat completion said, streamed or not."""

    text: str
    model: str
    finish_reason: str | None
    refusal: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int


class OpenAIBackend:
    """An `LLMBackend` calling any OpenAI-compatible Chat Completions server."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | SecretStr | None,
        base_url: str | None = None,
        model: str = DEFAULT_OPENAI_MODEL,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float | None = None,
        send_temperature: bool = True,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S,
        stream: bool = False,
        max_tokens_param: MaxTokensParam = "max_tokens",
        response_format: ResponseFormat = "text",
        prices: Mapping[str, Price] = PRICES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.send_temperature = send_temperature
        self.timeout_s = timeout_s
        self.stream = stream
        self.max_tokens_param = max_tokens_param
        self.response_format = response_format
        self.prices = prices
        self.base_url = base_url
        self._clock = clock
        self._warned: set[str] = set()
        hooks = _RetryHooks(max_retry_after_s)
        self._client = openai.AsyncOpenAI(
            api_key=key or NO_KEY,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=openai.DefaultAsyncHttpxClient(
                event_hooks={"request": [hooks.on_request], "response": [hooks.on_response]}
            ),
        )

    def describe(self) -> str:
        mode = "streamed" if self.stream else "plain"
        where = f", base URL {self.base_url}" if self.base_url else ""
        return f"model {self.model}, {mode}, timeout {self.timeout_s:g} s{where}"

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        model = request.model or self.model
        max_tokens = request.max_tokens or self.max_tokens
        timeout_s = request.timeout_s or self.timeout_s
        temperature = request.temperature if request.temperature is not None else self.temperature
        options: dict[str, Any] = {self.max_tokens_param: max_tokens, "timeout": timeout_s}
        if temperature is not None and self.send_temperature:
            options["temperature"] = temperature
        if request.output_model is not None and self.response_format == "json_object":
            options["response_format"] = {"type": "json_object"}
        elif request.output_model is not None and self.response_format == "json_schema":
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.output_model.__name__,
                    "schema": request.output_model.model_json_schema(),
                    "strict": False,
                },
            }

        async def generate(system: str, turns: Sequence[Turn]) -> RawReply:
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
                reply = await self._send(model, _message(system, turns), options)
            except openai_errors.MAPPED_ERRORS as err:
                raise openai_errors.map_openai_error(err, model=model) from err
            return self._raw(reply, model)

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
        self, model: str, messages: list[ChatCompletionMessageParam], options: dict[str, Any]
    ) -> _Reply:
        if not self.stream:
            completion: object = await self._client.chat.completions.create(
                model=model, messages=messages, **options
            )
            return self._completion(completion, model)
        stream = await self._client.chat.completions.create(
            model=model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            **options,
        )
        parts: list[str] = []
        refusal: list[str] = []
        served, finish = model, None
        usage = None
        async with stream:
            async for chunk in stream:
                served = getattr(chunk, "model", None) or served
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", None) or []:
                    delta = choice.delta
                    if delta is not None and delta.content:
                        parts.append(delta.content)
                    if delta is not None and getattr(delta, "refusal", None):
                        refusal.append(delta.refusal or "")
                    finish = choice.finish_reason or finish
        if finish is None:
            raise openai_errors.malformed("the stream ended without a finish_reason", model=model)
        details = getattr(usage, "prompt_tokens_details", None) if usage is not None else None
        return _Reply(
            text="".join(parts),
            model=served,
            finish_reason=finish,
            refusal="".join(refusal) or None,
            prompt_tokens=usage.prompt_tokens if usage is not None else None,
            completion_tokens=usage.completion_tokens if usage is not None else None,
            cached_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
        )

    @staticmethod
    def _completion(completion: object, model: str) -> _Reply:
        # The SDK does not validate replies: JSON of the wrong shape becomes a
        # ChatCompletion full of None, and a non-JSON content type comes back a str.
        if (
            not isinstance(completion, ChatCompletion)
            or not isinstance(completion.choices, list)
            or not completion.choices
            or completion.choices[0].message is None
        ):
            shown = type(completion).__name__
            raise openai_errors.malformed(f"got {shown} without choices", model=model)
        choice = completion.choices[0]
        usage = completion.usage
        details = usage.prompt_tokens_details if usage is not None else None
        return _Reply(
            text=choice.message.content or "",
            model=completion.model or model,
            finish_reason=choice.finish_reason,
            refusal=choice.message.refusal,
            prompt_tokens=usage.prompt_tokens if usage is not None else None,
            completion_tokens=usage.completion_tokens if usage is not None else None,
            cached_tokens=(details.cached_tokens or 0) if details is not None else 0,
        )

    def _raw(self, reply: _Reply, model: str) -> RawReply:
        refused = bool(reply.refusal) or reply.finish_reason == "content_filter"
        served = reply.model or model
        cost: float | None = None
        if reply.prompt_tokens is None or reply.completion_tokens is None:
            self._warn_once(
                f"usage:{served}",
                "the server sent no token usage for %s: its calls are unpriced",
                served,
            )
        else:
            cost = cost_usd(
                served,
                input_tokens=max(reply.prompt_tokens - reply.cached_tokens, 0),
                output_tokens=reply.completion_tokens,
                cache_read_tokens=reply.cached_tokens,
                prices=self.prices,
                provider="openai",
            )
            if cost is None:
                self._warn_once(served, "no price for openai:%s: its calls are unpriced", served)
        return RawReply(
            text=reply.text,
            usage=Usage(
                model=served,
                calls=1,
                input_tokens=reply.prompt_tokens or 0,
                output_tokens=reply.completion_tokens or 0,
                cost_usd=cost or 0.0,
                unpriced_calls=0 if cost is not None else 1,
            ),
            stop_reason="refusal" if refused else reply.finish_reason,
        )

    async def aclose(self) -> None:
        await self._client.close()
