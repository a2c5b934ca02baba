"""A worker stops an attempt a StepCancelled names, and publishes nothing for it.

The worker and the sim backend `select_backend()` gives it, with the sim's
slow-first-attempt knob as the straggler; what the worker publishes is
captured, no broker.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from tests.polling import wait_until_async

from synod.llm import LLMSettings, select_backend
from synod.roles.worker.service import Worker
from synod.service.host import ServiceContext, ServiceSettings
from synod.settings import KafkaSettings
from synod.transport import Received
from synod.transport.dispatcher import RawRecord
from synod.wire import Envelope, Sender, StepCompleted, StepRequested
from synod.wire.messages import StepCancelled, UsageReported

PLANNER = Sender(role="planner", instance="planner-0")


def request(attempt: int) -> Received:
    body = StepRequested(step_id="s1", role="coder", title="t", instructions="i", deadline_s=60)
    env = Envelope.new(body, sender=PLANNER, task_id="task-1", attempt=attempt)
    return Received(env, RawRecord("synod.steps.coder", 0, attempt, None, b""))


def cancel(*request_ids: str) -> Received:
    body = StepCancelled(step_id="s1", request_ids=list(request_ids), reason="hedge_lost")
    env = Envelope.new(body, sender=PLANNER, task_id="task-1")
    return Received(env, RawRecord("synod.steps.cancel", 0, 0, None, b""))


def worker() -> tuple[Worker, list[Envelope[Any]]]:
    # Attempt 0 of s1 sleeps 30 s; attempt 1 does not (the hedge).
    settings = LLMSettings(backend="sim", sim_latency="fixed:0", sim_slow_steps={"s1": 30.0})
    llm = select_backend(settings, notice=lambda line: None)
    ctx = ServiceContext("coder", KafkaSettings(), ServiceSettings(instance="coder-1"))
    published: list[Envelope[Any]] = []

    async def capture(spec: Any, envelope: Envelope[Any]) -> None:
        published.append(envelope)

    ctx.publish = capture  # type: ignore[method-assign]
    return Worker(ctx, "coder", llm), published


async def test_a_running_attempt_is_cancelled_and_reports_only_its_usage() -> None:
    w, published = worker()
    slow, hedge = request(0), request(1)
    running = asyncio.create_task(w.handle_cancellable(slow))
    await wait_until_async(
        lambda: slow.envelope.message_id in w.in_flight,
        what="the attempt to start",
        timeout_s=5,
        interval_s=0.01,
    )
    await w.handle_cancellable(hedge)  # the hedge finishes at once
    [won] = published
    assert isinstance(won.body, StepCompleted)
    assert won.causes == [hedge.envelope.message_id]

    started = time.monotonic()
    await w.on_cancel(cancel(slow.envelope.message_id))
    await asyncio.wait_for(running, 5)  # ends normally: the cancel is not an error
    assert time.monotonic() - started < 5  # not the 30 s the attempt would have taken
    # No outcome for the cancelled attempt: only its usage (the call's worst case,
    # since a call cut off returns none), which ends its grant of the budget.
    won_, charged = published
    assert won_ == won
    assert isinstance(charged.body, UsageReported)
    assert charged.body.what == "cancelled"
    assert charged.body.request_id == slow.envelope.message_id
    assert charged.body.usage.calls == 2  # a structured call and its repair turn
    assert charged.body.usage.output_tokens >= 4_096
    assert w.in_flight == {}


async def test_a_cancel_that_arrives_first_stops_the_request_before_it_runs() -> None:
    w, published = worker()
    slow = request(0)
    await w.on_cancel(cancel(slow.envelope.message_id))
    await asyncio.wait_for(w.handle_cancellable(slow), 5)
    assert published == []


async def test_a_stop_of_the_worker_itself_still_propagates() -> None:
    w, _ = worker()
    slow = request(0)
    running = asyncio.create_task(w.handle_cancellable(slow))
    await wait_until_async(
        lambda: slow.envelope.message_id in w.in_flight,
        what="the attempt to start",
        timeout_s=5,
        interval_s=0.01,
    )
    running.cancel()  # shutdown, not a StepCancelled: not swallowed as a step cancel
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 5)
