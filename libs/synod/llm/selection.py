"""Choosing the backend: Claude when there is a key, the simulation otherwise, and saying so."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Literal

from synod.core.resilience.breaker import BreakerConfig
from synod.errors import ConfigError
from synod.llm.faults import Latency, load_profile
from synod.llm.resilient import ResilientBackend, Route
from synod.llm.settings import LLMSettings, load_settings
from synod.llm.sim import CrashHook, SimBackend, Sleep, exit_process
from synod.llm.types import LLMBackend

BackendKind = Literal["anthropic", "sim"]


def backend_choice(settings: LLMSettings) -> tuple[BackendKind, str]:
    """Which backend the settings ask for, and why (for the one-line notice)."""
    if settings.backend == "anthropic":
        if not settings.has_api_key:
            raise ConfigError("SYNOD_LLM_BACKEND=anthropic needs ANTHROPIC_API_KEY to be set")
        return "anthropic", "SYNOD_LLM_BACKEND=anthropic"
    if settings.backend == "sim":
        return "sim", "SYNOD_LLM_BACKEND=sim"
    if settings.has_api_key:
        return "anthropic", "ANTHROPIC_API_KEY is set"
    return "sim", "no ANTHROPIC_API_KEY"


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
        # A service's crashes model process deaths: a new process, a new draw.
        life=os.getpid() if crash is exit_process else 0,
    )


def build_anthropic(settings: LLMSettings) -> LLMBackend:
    # Imported here so that a simulation-only process never loads the SDK.
    from synod.llm.anthropic_backend import AnthropicBackend
    from synod.llm.pricing import PRICES, Price

    if settings.anthropic_api_key is None:
        raise ConfigError("the anthropic backend needs ANTHROPIC_API_KEY to be set")
    prices = {**PRICES, **{m: Price(*p) for m, p in settings.prices.items()}}
    return AnthropicBackend(
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        model=settings.model,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        timeout_s=settings.timeout_s,
        max_retries=settings.max_retries,
        max_retry_after_s=settings.max_retry_after_s,
        stream=settings.stream,
        prices=prices,
    )


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

    It comes wrapped in the resilience layer (breakers, fallback chain,
    bulkheads, deadline); `.inner` is the chosen backend itself.

    `sleep` and `crash` only matter for the simulated backend (virtual time, and
    what a simulated crash does in this process).
    """
    settings = settings if settings is not None else load_settings()
    kind, why = backend_choice(settings)
    if kind == "anthropic":
        where = f", base URL {settings.anthropic_base_url}" if settings.anthropic_base_url else ""
        backend = build_anthropic(settings)
        stream = "streamed" if settings.stream else "plain"
        notice(f"llm: anthropic backend ({why}), model {settings.model}, {stream}{where}")
    else:
        sim = build_sim(settings, sleep=sleep, crash=crash)
        notice(f"llm: sim backend ({why}), {sim.describe()}")
        backend = sim
    resilient = build_resilient(settings, kind, backend, sleep=sleep, crash=crash)
    if resilient.fallbacks:
        notice(f"llm: {resilient.describe()}")
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
    backends: dict[str, LLMBackend] = {kind: primary}
    for route in fallbacks:
        if route.provider not in backends:
            if route.provider == "anthropic":
                backends["anthropic"] = build_anthropic(settings)
            else:
                backends["sim"] = build_sim(settings, sleep=sleep, crash=crash)
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
    )
