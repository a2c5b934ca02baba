"""Choosing the backends: Claude with a key, an OpenAI-compatible server with its key or base
URL, the simulation otherwise; routing and fallbacks may add the others; and saying so."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Literal

from synod.core.resilience.breaker import BreakerConfig
from synod.errors import ConfigError
from synod.llm.faults import Latency, load_profile
from synod.llm.pricing import PRICE_TABLE_VERSION, merged
from synod.llm.resilient import ResilientBackend, Route
from synod.llm.routing import RoutingTable
from synod.llm.settings import LLMSettings, load_settings
from synod.llm.sim import CrashHook, SimBackend, Sleep, exit_process
from synod.llm.types import LLMBackend

BackendKind = Literal["anthropic", "openai", "sim"]


def backend_choice(settings: LLMSettings) -> tuple[BackendKind, str]:
    """Which backend the settings ask for, and why (for the one-line notice)."""
    if settings.backend == "anthropic":
        if not settings.has_api_key:
            raise ConfigError("SYNOD_LLM_BACKEND=anthropic needs ANTHROPIC_API_KEY to be set")
        return "anthropic", "SYNOD_LLM_BACKEND=anthropic"
    if settings.backend == "openai":
        if not settings.has_openai:
            raise ConfigError(
                "SYNOD_LLM_BACKEND=openai needs OPENAI_API_KEY or SYNOD_OPENAI_BASE_URL to be set"
            )
        return "openai", "SYNOD_LLM_BACKEND=openai"
    if settings.backend == "sim":
        return "sim", "SYNOD_LLM_BACKEND=sim"
    if settings.has_api_key:
        return "anthropic", "ANTHROPIC_API_KEY is set"
    if settings.has_openai:
        why = "OPENAI_API_KEY is set" if settings.openai_api_key else "SYNOD_OPENAI_BASE_URL is set"
        return "openai", why
    return "sim", "no ANTHROPIC_API_KEY"


def routing_in_force(settings: LLMSettings) -> dict[str, object]:
    """The routing these settings give, without building a backend (for `synod config`):
    the primary backend and why, the route per role and step kind with where each
    came from, and the fallback chain."""
    kind, why = backend_choice(settings)
    table = RoutingTable.build(
        kind, settings.default_model(kind, kind), settings.routing, settings.per_role_models()
    )
    fallbacks = [Route.parse(entry, kind) for entry in settings.fallback_models]
    return {
        "backend": kind,
        "why": why,
        "routes": table.describe(),
        "fallback": [r.spec for r in fallbacks],
        "price_table": PRICE_TABLE_VERSION,
    }


def build_sim(
    settings: LLMSettings, *, sleep: Sleep = asyncio.sleep, crash: CrashHook = exit_process
) -> SimBackend:
    profile = load_profile(settings.fault_profile)
    latency = Latency.parse(settings.sim_latency) if settings.sim_latency else None
    return SimBackend(
        seed=settings.sim_seed,
        profile=profile,
        latency=latency,
        timeout_s=settings.timeout_s,
        sleep=sleep,
        crash=crash,
        slow_first_attempts=settings.sim_slow_steps,
        wrong_steps=settings.sim_wrong_steps,
        prompt_log=settings.sim_prompt_log,
        # A service's crashes model process deaths: a new process, a new draw.
        life=os.getpid() if crash is exit_process else 0,
    )


def build_anthropic(settings: LLMSettings, model: str) -> LLMBackend:
    # Deferred: a process that never calls Claude never loads the anthropic SDK (seconds).
    from synod.llm.anthropic_backend import AnthropicBackend

    if settings.anthropic_api_key is None:
        raise ConfigError("the anthropic backend needs ANTHROPIC_API_KEY to be set")
    return AnthropicBackend(
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        model=model,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        timeout_s=settings.timeout_s,
        max_retries=settings.max_retries,
        max_retry_after_s=settings.max_retry_after_s,
        stream=settings.stream,
        prices=merged(settings.prices),
    )


def build_openai(settings: LLMSettings, model: str) -> LLMBackend:
    # Deferred: a process that never calls an OpenAI-compatible server never loads the SDK.
    from synod.llm.openai_backend import OpenAIBackend

    if not settings.has_openai:
        raise ConfigError(
            "the openai backend needs OPENAI_API_KEY or SYNOD_OPENAI_BASE_URL to be set"
        )
    return OpenAIBackend(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        model=model,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        send_temperature=settings.openai_send_temperature,
        timeout_s=settings.timeout_s,
        max_retries=settings.max_retries,
        max_retry_after_s=settings.max_retry_after_s,
        stream=settings.stream if settings.openai_stream is None else settings.openai_stream,
        max_tokens_param=settings.openai_max_tokens_param,
        response_format=settings.openai_response_format,
        prices=merged(settings.prices),
    )


def build_backend(
    settings: LLMSettings,
    provider: str,
    primary: str,
    *,
    sleep: Sleep = asyncio.sleep,
    crash: CrashHook = exit_process,
) -> LLMBackend:
    """The backend of one provider, with that provider's default model."""
    model = settings.default_model(provider, primary)
    if provider == "anthropic":
        return build_anthropic(settings, model)
    if provider == "openai":
        return build_openai(settings, model)
    return build_sim(settings, sleep=sleep, crash=crash)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def select_backend(
    settings: LLMSettings | None = None,
    *,
    notice: Callable[[str], None] = _to_stderr,
    sleep: Sleep = asyncio.sleep,
    crash: CrashHook = exit_process,
) -> ResilientBackend:
    """The backend to use, announced in one line (on stderr unless `notice` says otherwise).

    It comes wrapped in the resilience layer (routing, breakers, fallback
    chain, bulkheads, deadline); `.inner` is the chosen backend itself.

    `sleep` and `crash` only matter for the simulated backend (virtual time, and
    what a simulated crash does in this process).
    """
    settings = settings if settings is not None else load_settings()
    kind, why = backend_choice(settings)
    backend = build_backend(settings, kind, kind, sleep=sleep, crash=crash)
    if kind == "anthropic":
        where = f", base URL {settings.anthropic_base_url}" if settings.anthropic_base_url else ""
        stream = "streamed" if settings.stream else "plain"
        model = settings.default_model(kind, kind)
        notice(f"llm: anthropic backend ({why}), model {model}, {stream}{where}")
    elif kind == "openai":
        notice(f"llm: openai backend ({why}), {backend.describe()}")  # type: ignore[attr-defined]
    else:
        notice(f"llm: sim backend ({why}), {backend.describe()}")  # type: ignore[attr-defined]
    resilient = build_resilient(settings, kind, backend, sleep=sleep, crash=crash)
    if resilient.fallbacks:
        notice(f"llm: {resilient.describe()}")
    if resilient.routing.entries:
        routes = ", ".join(f"{k}={v}" for k, v in resilient.routing.describe().items())
        notice(f"llm: routing {routes}")
    return resilient


def build_resilient(
    settings: LLMSettings,
    kind: BackendKind,
    primary: LLMBackend,
    *,
    sleep: Sleep = asyncio.sleep,
    crash: CrashHook = exit_process,
) -> ResilientBackend:
    """Wrap the chosen backend in breakers, the fallback chain and bulkheads (synod.llm.resilient).

    A fallback on another provider gets a backend of its own, built from the same settings.
    """
    fallbacks = [Route.parse(entry, kind) for entry in settings.fallback_models]
    routing = RoutingTable.build(
        kind,
        settings.default_model(kind, kind),
        settings.routing,
        settings.per_role_models(),
    )
    backends: dict[str, LLMBackend] = {kind: primary}
    # Every provider the chain or the routing names, and every provider that is
    # configured (a task's labels may route to it): one backend each.
    wanted = [r.provider for r in fallbacks] + sorted(routing.providers())
    if settings.has_api_key:
        wanted.append("anthropic")
    if settings.has_openai:
        wanted.append("openai")
    for provider in wanted:
        if provider not in backends:
            try:
                backends[provider] = build_backend(
                    settings, provider, kind, sleep=sleep, crash=crash
                )
            except ConfigError as exc:
                raise ConfigError(f"SYNOD_LLM_FALLBACK / routing: {exc}") from None
    try:
        breaker = BreakerConfig(
            window_s=settings.breaker_window_s,
            min_calls=settings.breaker_min_calls,
            failure_rate_threshold=settings.breaker_failure_rate,
            open_for_s=settings.breaker_open_for_s,
            half_open_probes=settings.breaker_half_open_probes,
            success_to_close=settings.breaker_success_to_close,
            retry_after_hold_s=settings.breaker_retry_after_hold_s or None,
        )
    except ValueError as exc:
        raise ConfigError(f"invalid SYNOD_LLM_BREAKER_* settings: {exc}") from None
    return ResilientBackend(
        backends,
        kind,
        fallbacks=fallbacks,
        breaker=breaker,
        provider_limits=settings.provider_concurrency,
        role_limits=settings.role_concurrency,
        routing=routing,
    )
