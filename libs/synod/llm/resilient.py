"""The backend agents actually call: breakers, a fallback chain, bulkheads and the deadline.

`ResilientBackend` wraps the real backends (one per provider) and, for each
request:

1. waits for a slot of the request's role (bulkhead), then walks the chain:
   the routed model (synod.llm.routing: the request's model, the task's
   labels, the role's route, or the default), then the configured fallbacks
   (`SYNOD_LLM_FALLBACK`), each a (provider, model) link, on any provider;
2. for each link, waits for a slot of its provider and of the link itself
   (bulkheads; `SYNOD_LLM_PROVIDER_CONCURRENCY` takes `openai=8` and
   `openai/gpt-5-mini=2`) and asks the link's circuit breaker; an open breaker
   is skipped at once (fail fast);
3. calls the first route whose breaker admits it and records the outcome; a
   transient failure moves on to the next route, a permanent or budget error
   ends the call (another model would not make the request valid);
4. when every breaker in the chain rejected the call, raises
   `LLMTransientError(reason="circuit_open")` with the shortest time until one
   of them probes again, so the step waits in a retry topic.

The response (and the error, when every link failed) carries a `ModelRoute`:
the link that answered, where its model was chosen, the chain, and each link
passed over with its reason (`circuit_open`, or the error it raised).

Every wait and call is bounded by the request's deadline (`timeout_s`, which
the worker sets to the step's `deadline_s`): waiting for a slot spends the
step's own time. A call cut off at the deadline is a transient timeout for its
breaker; a call cancelled for another reason (shutdown) says nothing about the
provider and gives its permit back unjudged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from prometheus_client import Counter, Gauge

from synod.core.resilience.breaker import BreakerConfig, Decision, Permit, State, Transition
from synod.core.resilience.registry import BREAKERS, BreakerBoard
from synod.errors import ConfigError, ErrorClass
from synod.llm.bulkhead import Bulkhead, BulkheadFull
from synod.llm.errors import LLMError, LLMPermanentError, LLMTimeoutError, LLMTransientError
from synod.llm.routing import PROVIDERS, Choice, Link, RoutingTable
from synod.llm.types import LLMBackend, LLMRequest, LLMResponse, add_usage
from synod.observability.hops import llm_call, span_event
from synod.wire.messages import ModelRoute, SkippedLink, Usage

log = logging.getLogger("synod.llm")

__all__ = ["PROVIDERS", "ResilientBackend", "Route"]

STATE_VALUE: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}
# A call cancelled this close to its deadline was cut off by the deadline
# (the caller's own timer, started a moment before ours, fired first).
DEADLINE_SLACK_S = 0.1

BREAKER_STATE = Gauge(
    "synod_llm_breaker_state",
    "Circuit breaker state per provider and model: 0 closed, 1 half-open, 2 open",
    ["provider", "model"],
)
BREAKER_TRANSITIONS = Counter(
    "synod_llm_breaker_transitions_total",
    "Circuit breaker state changes",
    ["provider", "model", "to_state"],
)
BREAKER_REJECTIONS = Counter(
    "synod_llm_breaker_rejections_total",
    "Calls a circuit breaker refused (open, or half-open with every probe slot taken)",
    ["provider", "model"],
)
FALLBACKS = Counter(
    "synod_llm_fallbacks_total",
    "Calls served by a later model of the fallback chain than the first",
    ["from_model", "to_model"],
)
BULKHEAD_IN_USE = Gauge(
    "synod_llm_bulkhead_slots_in_use",
    "Calls holding a bulkhead slot now",
    ["kind", "name"],
)
BULKHEAD_WAITS = Counter(
    "synod_llm_bulkhead_waits_total",
    "Calls that had to wait for a bulkhead slot",
    ["kind", "name"],
)
BULKHEAD_TIMEOUTS = Counter(
    "synod_llm_bulkhead_timeouts_total",
    "Calls whose deadline passed while waiting for a bulkhead slot",
    ["kind", "name"],
)


# A link of the chain; the name this module has always used for it.
Route = Link


def _record_transition(key: str, transition: Transition) -> None:
    provider, _, model = key.partition("/")
    BREAKER_STATE.labels(provider, model).set(STATE_VALUE[transition.to_state])
    BREAKER_TRANSITIONS.labels(provider, model, transition.to_state).inc()
    level = logging.WARNING if transition.to_state == "open" else logging.INFO
    log.log(
        level,
        f"breaker {transition.to_state}",
        extra={"breaker": key, "from_state": transition.from_state, "why": transition.reason},
    )


def _link(route: Route) -> dict[str, str]:
    return {"provider": route.provider, "model": route.model}


class ResilientBackend:
    """An `LLMBackend` over one backend per provider; see the module doc for what it adds."""

    def __init__(
        self,
        backends: Mapping[str, LLMBackend],
        primary: str,
        *,
        fallbacks: Sequence[Route] = (),
        breaker: BreakerConfig | None = None,
        provider_limits: Mapping[str, int] | None = None,
        role_limits: Mapping[str, int] | None = None,
        board: BreakerBoard = BREAKERS,
        clock: Callable[[], float] = time.monotonic,
        routing: RoutingTable | None = None,
    ) -> None:
        if primary not in backends:
            raise ConfigError(f"no backend for the primary provider {primary!r}")
        missing = sorted({r.provider for r in fallbacks} - set(backends))
        if missing:
            raise ConfigError(f"no backend for the fallback provider(s) {', '.join(missing)}")
        self.backends = dict(backends)
        self.primary = primary
        self.fallbacks = list(fallbacks)
        self.routing = routing or RoutingTable(primary, self.default_model(primary))
        unserved = sorted(self.routing.providers() - set(backends))
        if unserved:
            raise ConfigError(f"no backend for the routed provider(s) {', '.join(unserved)}")
        self.breaker_config = breaker or BreakerConfig()
        self.board = board
        self.board.listen(_record_transition)
        self._clock = clock
        self._provider_slots = {
            name: self._bulkhead("provider", name, limit)
            for name, limit in (provider_limits or {}).items()
        }
        self._role_slots = {
            name: self._bulkhead("role", name, limit) for name, limit in (role_limits or {}).items()
        }

    @staticmethod
    def _bulkhead(kind: str, name: str, limit: int) -> Bulkhead:
        def on_change(in_use: int, waited: bool) -> None:
            BULKHEAD_IN_USE.labels(kind, name).set(in_use)
            if waited:
                BULKHEAD_WAITS.labels(kind, name).inc()

        BULKHEAD_IN_USE.labels(kind, name).set(0)
        return Bulkhead(f"{kind} {name}", limit, on_change=on_change)

    @property
    def name(self) -> str:
        return self.backends[self.primary].name

    @property
    def inner(self) -> LLMBackend:
        """The primary provider's own backend."""
        return self.backends[self.primary]

    def default_model(self, provider: str) -> str:
        return str(getattr(self.backends[provider], "model", "") or provider)

    def choose(self, request: LLMRequest) -> Choice:
        """The first link for this request (synod.llm.routing), or a permanent error
        when the request asks for a provider this process has no backend for."""
        try:
            choice = self.routing.choose(request.role, request.kind, request.labels, request.model)
        except ConfigError as exc:
            raise LLMPermanentError(
                str(exc), reason="bad_request", model=request.model or ""
            ) from None
        if choice.link.provider not in self.backends:
            raise LLMPermanentError(
                f"{choice.source} routes to {choice.link.spec}, but this service has no "
                f"{choice.link.provider} backend (configure its key or base URL)",
                reason="bad_request",
                model=choice.link.model,
            )
        return choice

    def routes(self, request: LLMRequest) -> list[Route]:
        """The chain for this request: its routed model first, then the fallbacks."""
        chain = [self.choose(request).link]
        for route in self.fallbacks:
            if route not in chain:
                chain.append(route)
        return chain

    def describe(self) -> str:
        chain = " -> ".join(r.key for r in self.fallbacks)
        return f"fallback {chain}" if chain else "no fallback"

    def describe_routing(self) -> dict[str, object]:
        """The routing in force, for `synod config` and the startup notice."""
        return {
            "primary": self.primary,
            "routes": self.routing.describe(),
            "fallback": [r.spec for r in self.fallbacks],
            "providers": sorted(self.backends),
        }

    def states(self) -> dict[str, State]:
        return self.board.states(self._clock())

    async def complete(self, request: LLMRequest) -> LLMResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_s if request.timeout_s else None
        choice = self.choose(request)
        routes = [choice.link] + [r for r in self.fallbacks if r != choice.link]
        with llm_call(
            role=request.role,
            provider=routes[0].provider,
            model=routes[0].model,
            task_id=request.task_id,
            step_id=request.step_id,
            attempt=request.attempt,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
        ) as call:  # the GenAI span and the call's metrics (observability)
            try:
                async with self._slot(self._role_slots, request.role, deadline):
                    response = await self._through(request, routes, choice, deadline)
            except BulkheadFull as exc:
                raise LLMTimeoutError(
                    f"deadline of {request.timeout_s:g}s passed waiting: {exc}",
                    model=routes[0].model,
                ) from None
            call.done(response)
            return response

    @contextlib.asynccontextmanager
    async def _slot(
        self, slots: dict[str, Bulkhead], name: str, deadline: float | None
    ) -> AsyncIterator[None]:
        bulkhead = slots.get(name)
        if bulkhead is None:
            yield
            return
        try:
            async with bulkhead.slot(deadline=deadline):
                yield
        except BulkheadFull:
            kind, _, label = bulkhead.name.partition(" ")
            BULKHEAD_TIMEOUTS.labels(kind, label).inc()
            raise

    async def _through(
        self, request: LLMRequest, routes: list[Route], choice: Choice, deadline: float | None
    ) -> LLMResponse:
        rejected: list[Decision] = []
        failed: LLMTransientError | None = None
        last_tried = routes[0]
        spent = Usage()
        skipped: list[SkippedLink] = []

        def trace(answered: Route) -> ModelRoute:
            return ModelRoute(
                provider=answered.provider,
                model=answered.model,
                source=choice.source,
                chain=[r.spec for r in routes],
                skipped=list(skipped),
            )

        for route in routes:
            async with (
                self._slot(self._provider_slots, route.provider, deadline),
                self._slot(self._provider_slots, route.key, deadline),
            ):
                breaker = self.board.breaker(route.key, self.breaker_config)
                decision = breaker.allow(self._clock())
                self.board.settle(route.key)
                BREAKER_STATE.labels(route.provider, route.model).set(STATE_VALUE[decision.state])
                if decision.permit is None:
                    BREAKER_REJECTIONS.labels(route.provider, route.model).inc()
                    span_event(
                        "synod.breaker.rejected",
                        {"synod.breaker": route.key, "synod.breaker.state": decision.state},
                    )
                    rejected.append(decision)
                    skipped.append(SkippedLink(**_link(route), reason="circuit_open"))
                    continue
                try:
                    response = await self._call(route, decision.permit, request, deadline)
                except LLMTransientError as exc:
                    spent = add_usage(spent, exc.usage)
                    failed, last_tried = exc, route
                    skipped.append(SkippedLink(**_link(route), reason=exc.reason))
                    span_event(
                        "synod.llm.failed_over",
                        {"synod.llm.route": route.key, "synod.llm.error": str(exc)[:200]},
                    )
                    if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                        break  # no time left for another model
                    continue
                except LLMError as exc:
                    exc.usage = add_usage(spent, exc.usage)
                    exc.route = trace(route)
                    raise
                if spent.calls:
                    response = dataclasses.replace(response, usage=add_usage(spent, response.usage))
                if route != routes[0]:
                    FALLBACKS.labels(routes[0].key, route.key).inc()
                    span_event("synod.llm.fallback", {"from": routes[0].key, "to": route.key})
                return dataclasses.replace(response, route=trace(route))
        if failed is not None:
            failed.usage = spent
            failed.route = trace(last_tried)  # the last link tried, and how it failed
            raise failed
        waits = [d.retry_after_s for d in rejected if d.retry_after_s > 0]
        error = LLMTransientError(
            "circuit open for every model in the chain: " + ", ".join(r.key for r in routes),
            reason="circuit_open",
            model=routes[0].model,
            retry_after_s=min(waits) if waits else None,
        )
        error.route = ModelRoute(
            source=choice.source, chain=[r.spec for r in routes], skipped=list(skipped)
        )
        raise error

    async def _call(
        self, route: Route, permit: Permit, request: LLMRequest, deadline: float | None
    ) -> LLMResponse:
        backend = self.backends[route.provider]
        default = Route(self.primary, self.default_model(self.primary))
        if request.model is None and route == default and not request.labels:
            sent = request  # the backend's own default model, exactly as without the wrapper
        else:
            sent = dataclasses.replace(request, model=route.model)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline) as scope:
                response = await backend.complete(sent)
        except TimeoutError:
            if not scope.expired():  # a bare TimeoutError from inside the backend
                self._release(route, permit)
                raise
            self._record(route, permit, ok=False, error_class="transient")
            raise LLMTimeoutError(
                f"{route.key}: deadline of {request.timeout_s:g}s passed", model=route.model
            ) from None
        except LLMError as exc:
            hint = exc.retry_after_s if isinstance(exc, LLMTransientError) else None
            self._record(route, permit, ok=False, error_class=exc.error_class, retry_after_s=hint)
            raise
        except asyncio.CancelledError:
            if deadline is not None and loop.time() >= deadline - DEADLINE_SLACK_S:
                self._record(route, permit, ok=False, error_class="transient")
            else:
                self._release(route, permit)
            raise
        except BaseException:
            self._release(route, permit)
            raise
        self._record(route, permit, ok=True)
        return response

    def _record(
        self,
        route: Route,
        permit: Permit,
        *,
        ok: bool,
        error_class: ErrorClass = "transient",
        retry_after_s: float | None = None,
    ) -> None:
        breaker = self.board.breaker(route.key, self.breaker_config)
        now = self._clock()
        breaker.record(permit, now, ok=ok, error_class=error_class, retry_after_s=retry_after_s)
        self.board.settle(route.key)

    def _release(self, route: Route, permit: Permit) -> None:
        self.board.breaker(route.key, self.breaker_config).release(permit, self._clock())
        self.board.settle(route.key)

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
