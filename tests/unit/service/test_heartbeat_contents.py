"""A heartbeat carries the instance's real state: steps in hand, breaker states, last progress.

No broker: the context's publisher and consumer are built but never started;
the handler is driven through the same wrapper the consumer would call.
"""

from __future__ import annotations

import asyncio

import pytest

from synod.core.resilience.breaker import BreakerConfig
from synod.core.resilience.registry import BREAKERS
from synod.llm import LLMRequest, LLMResponse, LLMTransientError
from synod.llm.resilient import ResilientBackend, Route
from synod.service.host import ServiceContext, ServiceSettings, heartbeat
from synod.settings import KafkaSettings
from synod.transport import Received
from synod.transport.dispatcher import RawRecord
from synod.transport.topics import STEPS_CODER
from synod.wire import Envelope, Sender, StepRequested


class Down:
    """A provider that answers 529 to everything."""

    name = "anthropic"
    model = "big"

    async def complete(self, request: LLMRequest) -> LLMResponse:
        model = request.model or self.model
        raise LLMTransientError("529", reason="overloaded", model=model)

    async def aclose(self) -> None:
        pass


def step_message(task: str, step: str) -> Received:
    body = StepRequested(step_id=step, plan_id="p", role="coder", title="t", instructions="i")
    env = Envelope.new(body, sender=Sender(role="planner", instance="planner-1"), task_id=task)
    return Received(
        env, RawRecord(topic="synod.steps.coder", partition=0, offset=0, key=None, value=b"")
    )


async def test_in_flight_steps_and_last_progress() -> None:
    ctx = ServiceContext("coder", KafkaSettings(), ServiceSettings(instance="coder-1"))
    entered, release = asyncio.Event(), asyncio.Event()

    async def handler(msg: Received) -> None:
        entered.set()
        await release.wait()

    consumer = ctx.consume("synod.coder", [STEPS_CODER], handler)
    job = asyncio.create_task(consumer.dispatcher.handler(step_message("task-1", "s7")))
    await entered.wait()
    beat = heartbeat(ctx, 3, "running", 0.0)
    assert beat.in_flight == ["task-1/s7"]
    assert beat.last_progress_at is None
    release.set()
    await job
    beat = heartbeat(ctx, 4, "running", 0.0)
    assert beat.in_flight == []
    assert beat.last_progress_at is not None


async def test_breaker_states_as_the_wrapper_left_them() -> None:
    BREAKERS.clear()
    now = [500.0]
    llm = ResilientBackend(
        {"anthropic": Down()},
        "anthropic",
        fallbacks=[Route("anthropic", "small")],
        breaker=BreakerConfig(min_calls=2, open_for_s=5),
        clock=lambda: now[0],  # the default board: the one heartbeats read
    )
    ctx = ServiceContext("coder", KafkaSettings(), ServiceSettings(instance="coder-1"))
    for i in range(2):
        with pytest.raises(LLMTransientError):
            await llm.complete(LLMRequest(role="coder", task_id=f"t{i}", step_id="s", prompt="p"))
    beat = heartbeat(ctx, 0, "running", now[0])
    assert beat.breakers == {"anthropic/big": "open", "anthropic/small": "open"}
    assert heartbeat(ctx, 1, "running", now[0] + 5).breakers == {
        "anthropic/big": "half_open",
        "anthropic/small": "half_open",
    }
    BREAKERS.clear()
