"""A worker step whose call hangs ends at its deadline as a transient StepFailed (so it is
retried), and the hung call is really cancelled. The worker and the backend `select_backend()`
gives it, with the sim's `hang` fault; what the worker publishes is captured, no broker.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from synod.core.resilience.registry import BREAKERS
from synod.llm import LLMSettings, select_backend
from synod.roles.worker.service import Worker
from synod.service.host import ServiceContext, ServiceSettings
from synod.settings import KafkaSettings
from synod.transport import Received
from synod.transport.dispatcher import RawRecord
from synod.wire import Envelope, Sender, StepCompleted, StepFailed, StepRequested
from synod.wire.messages import FactPublished


def step(task: str, deadline_s: float) -> Received:
    body = StepRequested(
        step_id="s1", role="researcher", title="t", instructions="i", deadline_s=deadline_s
    )
    env = Envelope.new(body, sender=Sender(role="planner", instance="p"), task_id=task)
    record = RawRecord(topic="synod.steps.researcher", partition=0, offset=0, key=None, value=b"")
    return Received(env, record)


@pytest.mark.parametrize("fault", ["hang", "none"])
async def test_a_hung_step_fails_transiently_at_its_deadline(fault: str, tmp_path: Path) -> None:
    BREAKERS.clear()
    profile = tmp_path / "p.toml"
    profile.write_text(f"[rates]\n{fault} = 1.0\n" if fault != "none" else "")
    settings = LLMSettings(backend="sim", fault_profile=str(profile), sim_latency="fixed:0")
    llm = select_backend(settings, notice=lambda line: None)
    ctx = ServiceContext("researcher", KafkaSettings(), ServiceSettings(instance="r-1"))
    published: list[Envelope[Any]] = []

    async def capture(spec: Any, envelope: Envelope[Any]) -> None:
        published.append(envelope)

    ctx.publish = capture  # type: ignore[method-assign]
    tasks_before = len(asyncio.all_tasks())
    await Worker(ctx, "researcher", llm).handle(step("task-1", 0.2))
    assert len(asyncio.all_tasks()) == tasks_before  # the hung call did not outlive the step
    *facts, outcome = published  # a completed researcher's facts come first
    if fault == "hang":
        assert facts == []
        assert isinstance(outcome.body, StepFailed)
        assert outcome.body.error_class == "transient"
        assert outcome.body.reason in ("deadline", "timeout")
        # The breaker heard of it: one call, one failure.
        assert BREAKERS.breaker("sim/sim", llm.breaker_config).window(time.monotonic()) == (1, 1)
    else:
        assert isinstance(outcome.body, StepCompleted)
        assert facts
        assert all(isinstance(f.body, FactPublished) for f in facts)
    BREAKERS.clear()
