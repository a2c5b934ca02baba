"""The resilience wrapper: breaker per (provider, model), fallback chain, bulkheads, deadline.

The backends here are scripted stand-ins (what each model answers is a
function of the request), and the breakers run on a clock the test moves, so
the cool-down never waits on the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY

from synod.core.resilience.breaker import BreakerConfig
from synod.core.resilience.registry import BreakerBoard
from synod.errors import ConfigError
from synod.llm import LLMPermanentError, LLMRequest, LLMResponse, LLMTransientError
from synod.llm.errors import LLMTimeoutError
from synod.llm.faults import FaultProfile, Latency
from synod.llm.resilient import ResilientBackend, Route
from synod.llm.sim import SimBackend
from synod.wire.messages import Usage

CFG = BreakerConfig(window_s=60, min_calls=3, failure_rate_threshold=0.5, open_for_s=10)

Behave = Callable[[LLMRequest], Awaitable[LLMResponse]]


def ok_response(request: LLMRequest, model: str) -> LLMResponse:
    return LLMResponse(
        text="fine",
        parsed=None,
        usage=Usage(model=model, calls=1, input_tokens=3),
        model=model,
        latency_s=0.0,
    )


class Scripted:
    """A backend whose answer per model is set by the test; it records every call."""

    def __init__(self, name: str = "anthropic", model: str = "big") -> None:
        self.name = name
        self.model = model
        self.calls: list[str] = []
        self.down: set[str] = set()  # models answering 529
        self.broken: set[str] = set()  # models answering 400
        self.hang: set[str] = set()
        self.cancelled = 0
        self.delay_s = 0.0
        self.started = asyncio.Event()
        self.in_flight = 0
        self.peak = 0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        model = request.model or self.model
        self.calls.append(model)
        self.started.set()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if model in self.hang:
                await asyncio.get_running_loop().create_future()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        if model in self.down:
            usage = Usage(model=model, calls=1, input_tokens=5)
            raise LLMTransientError("529", reason="overloaded", model=model, usage=usage)
        if model in self.broken:
            raise LLMPermanentError("400", reason="bad_request", model=model)
        return ok_response(request, model)

    async def aclose(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def req(i: int = 0, **kw: object) -> LLMRequest:
    return LLMRequest(role="coder", task_id=f"t{i}", step_id="s", prompt="p", **kw)  # type: ignore[arg-type]


def wrap(
    backend: Scripted, clock: Clock, fallbacks: tuple[str, ...] = ("small",), **kw: object
) -> ResilientBackend:
    return ResilientBackend(
        {backend.name: backend},
        backend.name,
        fallbacks=[Route.parse(f, backend.name) for f in fallbacks],
        breaker=CFG,
        board=BreakerBoard(),
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


def metric(metric_name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric_name, labels) or 0.0


async def test_an_outage_opens_the_breaker_and_fallback_serves_then_it_closes() -> None:
    inner, clock = Scripted(), Clock()
    llm = wrap(inner, clock)
    before = metric(
        "synod_llm_fallbacks_total", from_model="anthropic/big", to_model="anthropic/small"
    )
    inner.down.add("big")
    served = [(await llm.complete(req(i))).model for i in range(6)]
    # The first three calls try "big", fail and fail over; then the breaker is open.
    assert served == ["small"] * 6
    assert inner.calls.count("big") == 3
    assert llm.states() == {"anthropic/big": "open", "anthropic/small": "closed"}
    after = metric(
        "synod_llm_fallbacks_total", from_model="anthropic/big", to_model="anthropic/small"
    )
    assert after - before == 6
    assert metric("synod_llm_breaker_state", provider="anthropic", model="big") == 2

    inner.down.clear()
    clock.now += CFG.open_for_s
    assert (await llm.complete(req(7))).model == "big"  # the half-open probe succeeds
    assert llm.states()["anthropic/big"] == "closed"
    transitions = llm.board.breaker("anthropic/big", CFG).transitions
    assert [t.to_state for t in transitions] == ["open", "half_open", "closed"]


async def test_a_failed_probe_reopens_and_the_fallback_keeps_serving() -> None:
    inner, clock = Scripted(), Clock()
    llm = wrap(inner, clock)
    inner.down.add("big")
    for i in range(3):
        await llm.complete(req(i))
    clock.now += CFG.open_for_s
    assert (await llm.complete(req(9))).model == "small"
    assert inner.calls[-2:] == ["big", "small"]
    assert llm.states()["anthropic/big"] == "open"


async def test_every_breaker_open_is_a_transient_circuit_open_with_retry_after() -> None:
    inner, clock = Scripted(), Clock()
    llm = wrap(inner, clock)
    inner.down |= {"big", "small"}
    fallbacks = metric(
        "synod_llm_fallbacks_total", from_model="anthropic/big", to_model="anthropic/small"
    )
    for i in range(3):
        with pytest.raises(LLMTransientError) as info:
            await llm.complete(req(i))
        assert info.value.reason == "overloaded"
        assert info.value.usage.calls == 2  # both models were tried and spent
    # Tried, never served: not counted as fallbacks.
    assert fallbacks == metric(
        "synod_llm_fallbacks_total", from_model="anthropic/big", to_model="anthropic/small"
    )
    calls = len(inner.calls)
    clock.now += 4
    with pytest.raises(LLMTransientError) as info:
        await llm.complete(req(5))
    assert info.value.reason == "circuit_open"
    assert info.value.error_class == "transient"
    assert info.value.retry_after_s == pytest.approx(6)
    assert len(inner.calls) == calls  # failed fast: no call went out


async def test_permanent_errors_neither_fall_back_nor_open() -> None:
    inner, clock = Scripted(), Clock()
    llm = wrap(inner, clock)
    inner.broken.add("big")
    for i in range(10):
        with pytest.raises(LLMPermanentError):
            await llm.complete(req(i))
    assert set(inner.calls) == {"big"}
    assert llm.states()["anthropic/big"] == "closed"


async def test_a_request_naming_a_model_starts_the_chain_there() -> None:
    inner, clock = Scripted(), Clock()
    llm = wrap(inner, clock, fallbacks=("small", "big"))
    assert [r.key for r in llm.routes(req(model="mid"))] == [
        "anthropic/mid",
        "anthropic/small",
        "anthropic/big",
    ]
    assert [r.key for r in llm.routes(req(model="small"))] == ["anthropic/small", "anthropic/big"]
    # Without a model, the backend's default is used, and the request goes unchanged.
    await llm.complete(req())
    assert inner.calls == ["big"]


async def test_a_fallback_on_another_provider() -> None:
    primary, other, clock = Scripted("anthropic", "big"), Scripted("sim", "sim"), Clock()
    llm = ResilientBackend(
        {"anthropic": primary, "sim": other},
        "anthropic",
        fallbacks=[Route.parse("sim:tiny", "anthropic")],
        breaker=CFG,
        board=BreakerBoard(),
        clock=clock,
    )
    primary.down.add("big")
    assert (await llm.complete(req())).model == "tiny"
    assert other.calls == ["tiny"]


@pytest.mark.parametrize("entry", ["openai: ", "anthropic:", " "])
def test_bad_fallback_entries_are_config_errors(entry: str) -> None:
    with pytest.raises(ConfigError, match="SYNOD_LLM_FALLBACK"):
        Route.parse(entry, "anthropic")


async def test_a_hung_call_is_cancelled_at_the_deadline_and_counts_as_a_failure() -> None:
    inner, clock = Scripted(), Clock()
    llm = wrap(inner, clock, fallbacks=())
    inner.hang.add("big")
    with pytest.raises(LLMTimeoutError) as info:
        await llm.complete(req(timeout_s=0.05))
    assert info.value.error_class == "transient"
    assert inner.cancelled == 1  # the call itself was cancelled, not left running
    assert llm.board.breaker("anthropic/big", CFG).window(clock()) == (1, 1)


async def test_a_deadline_spent_failing_leaves_no_time_for_the_fallback() -> None:
    inner, clock = Scripted(), Clock()
    llm = wrap(inner, clock)
    inner.hang.add("big")
    with pytest.raises(LLMTimeoutError):
        await llm.complete(req(timeout_s=0.05))
    assert inner.calls == ["big"]


async def test_the_callers_deadline_cancelling_the_call_counts_as_a_failure() -> None:
    # The worker wraps complete() in wait_for(step.deadline_s) too; its timer
    # starts first, so it is usually the one that fires, a moment before ours.
    inner, clock = Scripted(), Clock()
    llm = wrap(inner, clock, fallbacks=())
    inner.hang.add("big")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(llm.complete(req(timeout_s=0.08)), 0.05)
    assert inner.cancelled == 1
    assert llm.board.breaker("anthropic/big", CFG).window(clock()) == (1, 1)


async def test_a_cancel_before_the_deadline_gives_the_probe_back_unjudged() -> None:
    inner, clock = Scripted(), Clock()
    llm = wrap(inner, clock, fallbacks=())
    inner.down.add("big")
    for i in range(3):
        with pytest.raises(LLMTransientError):
            await llm.complete(req(i))
    clock.now += CFG.open_for_s
    inner.down.clear()
    inner.hang.add("big")
    inner.started.clear()
    task = asyncio.create_task(llm.complete(req(5, timeout_s=30)))
    await inner.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    breaker = llm.board.breaker("anthropic/big", CFG)
    assert breaker.state(clock()) == "half_open"
    assert breaker.probes_in_flight() == 0
    inner.hang.clear()
    assert (await llm.complete(req(6))).model == "big"
    assert breaker.state(clock()) == "closed"


async def test_the_sim_hang_fault_is_cancelled_at_the_deadline() -> None:
    sim = SimBackend(profile=FaultProfile("hangs", {"hang": 1.0}), latency=Latency("fixed", 0))
    llm = ResilientBackend({"sim": sim}, "sim", breaker=CFG, board=BreakerBoard())
    before = len(asyncio.all_tasks())
    with pytest.raises(LLMTimeoutError):
        await llm.complete(req(timeout_s=0.05))
    assert len(asyncio.all_tasks()) == before  # nothing left running
    assert llm.board.breaker("sim/sim", CFG).window(llm._clock()) == (1, 1)


async def test_role_bulkhead_waits_count_against_the_deadline() -> None:
    inner, clock = Scripted(), Clock()
    inner.delay_s = 0.3
    llm = wrap(inner, clock, fallbacks=(), role_limits={"coder": 1})
    waits = metric("synod_llm_bulkhead_waits_total", kind="role", name="coder")
    timeouts = metric("synod_llm_bulkhead_timeouts_total", kind="role", name="coder")
    first = asyncio.create_task(llm.complete(req(1)))
    await inner.started.wait()
    # The second call's deadline passes while the first holds the only slot.
    with pytest.raises(LLMTimeoutError, match="waiting"):
        await llm.complete(req(2, timeout_s=0.05))
    assert inner.calls == ["big"]
    await first
    assert metric("synod_llm_bulkhead_timeouts_total", kind="role", name="coder") == timeouts + 1
    # A waiter with time enough gets the slot when it frees.
    inner.delay_s = 0.05
    both = await asyncio.gather(llm.complete(req(3)), llm.complete(req(4, timeout_s=5)))
    assert [r.model for r in both] == ["big", "big"]
    assert metric("synod_llm_bulkhead_waits_total", kind="role", name="coder") == waits + 1
    assert metric("synod_llm_bulkhead_slots_in_use", kind="role", name="coder") == 0
    # The breaker never heard about the wait: it is not the provider's fault.
    assert llm.board.breaker("anthropic/big", CFG).window(clock()) == (3, 0)


async def test_provider_bulkhead_bounds_calls_in_flight() -> None:
    inner, clock = Scripted(), Clock()
    inner.delay_s = 0.02
    llm = wrap(inner, clock, fallbacks=(), provider_limits={"anthropic": 2})
    await asyncio.gather(*(llm.complete(req(i)) for i in range(8)))
    assert len(inner.calls) == 8
    assert inner.peak == 2


async def test_a_long_retry_after_opens_the_breaker_at_once() -> None:
    class Limited(Scripted):
        async def complete(self, request: LLMRequest) -> LLMResponse:
            model = request.model or self.model
            if model == "big":
                self.calls.append(model)
                raise LLMTransientError(
                    "429", reason="rate_limited", model=model, status=429, retry_after_s=300
                )
            return await super().complete(request)

    inner, clock = Limited(), Clock()
    llm = wrap(inner, clock)
    assert (await llm.complete(req(1))).model == "small"
    assert llm.states()["anthropic/big"] == "open"
    assert (await llm.complete(req(2))).model == "small"
    assert inner.calls == ["big", "small", "small"]
    clock.now += 299
    assert llm.states()["anthropic/big"] == "open"
    clock.now += 1
    assert llm.states()["anthropic/big"] == "half_open"


def test_a_model_name_with_a_colon_is_one_model_unless_a_provider_comes_first() -> None:
    assert Route.parse("llama3.1:8b", "openai") == Route("openai", "llama3.1:8b")
    assert Route.parse("openai:llama3.1:8b", "anthropic") == Route("openai", "llama3.1:8b")
    assert Route.parse("sim:tiny", "openai").spec == "sim:tiny"


async def test_the_response_says_which_link_answered_and_why_the_others_were_skipped() -> None:
    primary, other, clock = Scripted("anthropic", "big"), Scripted("openai", "gpt"), Clock()
    llm = ResilientBackend(
        {"anthropic": primary, "openai": other},
        "anthropic",
        fallbacks=[Route.parse("openai:gpt", "anthropic")],
        breaker=CFG,
        board=BreakerBoard(),
        clock=clock,
    )
    primary.down.add("big")
    first = await llm.complete(req())
    assert first.route is not None
    assert (first.route.provider, first.route.model, first.route.source) == (
        "openai",
        "gpt",
        "default",
    )
    assert first.route.chain == ["anthropic:big", "openai:gpt"]
    assert [(s.provider, s.model, s.reason) for s in first.route.skipped] == [
        ("anthropic", "big", "overloaded")
    ]
    # Enough failures open the primary's breaker: then it is skipped as open, unasked.
    for i in range(1, 4):
        await llm.complete(req(i))
    calls = len(primary.calls)
    later = await llm.complete(req(9))
    assert len(primary.calls) == calls
    assert later.route is not None
    assert [s.reason for s in later.route.skipped] == ["circuit_open"]


async def test_every_link_failing_puts_the_trace_on_the_error() -> None:
    primary, other, clock = Scripted("anthropic", "big"), Scripted("openai", "gpt"), Clock()
    llm = ResilientBackend(
        {"anthropic": primary, "openai": other},
        "anthropic",
        fallbacks=[Route("openai", "gpt")],
        breaker=CFG,
        board=BreakerBoard(),
        clock=clock,
    )
    primary.down.add("big")
    other.down.add("gpt")
    with pytest.raises(LLMTransientError) as caught:
        await llm.complete(req())
    route = caught.value.route
    assert route is not None
    assert (route.provider, route.model) == ("openai", "gpt")
    assert [s.reason for s in route.skipped] == ["overloaded", "overloaded"]
    assert caught.value.usage.calls == 2


async def test_routing_sends_each_role_to_its_own_provider() -> None:
    from synod.llm.routing import RoutingTable

    anthropic, openai, clock = Scripted("anthropic", "big"), Scripted("openai", "gpt"), Clock()
    table = RoutingTable.build(
        "anthropic", "big", {"coder.merge": "anthropic:merger"}, {"researcher": "openai:gpt-r"}
    )
    llm = ResilientBackend(
        {"anthropic": anthropic, "openai": openai},
        "anthropic",
        breaker=CFG,
        board=BreakerBoard(),
        clock=clock,
        routing=table,
    )
    research = await llm.complete(
        LLMRequest(role="researcher", task_id="t", step_id="s", prompt="p")
    )
    merge = await llm.complete(req(kind="merge"))
    plain = await llm.complete(req())
    labelled = await llm.complete(req(labels={"model.coder": "openai:gpt-l"}))
    assert openai.calls == ["gpt-r", "gpt-l"]
    assert anthropic.calls == ["merger", "big"]
    sources = [r.route.source for r in (research, merge, plain, labelled) if r.route]
    assert sources == [
        "SYNOD_MODEL_RESEARCHER",
        "SYNOD_LLM_ROUTING coder.merge",
        "default",
        "label model.coder",
    ]


async def test_a_label_for_a_provider_without_a_backend_is_a_permanent_error() -> None:
    llm = wrap(Scripted(), Clock(), fallbacks=())
    with pytest.raises(LLMPermanentError, match="no openai backend") as caught:
        await llm.complete(req(labels={"model": "openai:gpt"}))
    assert caught.value.reason == "bad_request"
    with pytest.raises(LLMPermanentError, match=r"label model\.codr"):
        await llm.complete(req(labels={"model.codr": "big"}))


async def test_a_link_of_its_own_can_have_a_bulkhead() -> None:
    inner, clock = Scripted(), Clock()
    llm = wrap(inner, clock, fallbacks=(), provider_limits={"anthropic/big": 1})
    inner.delay_s = 0.02
    await asyncio.gather(*(llm.complete(req(i)) for i in range(4)))
    assert inner.peak == 1
