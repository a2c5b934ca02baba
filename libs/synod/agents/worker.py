"""Researcher and coder: take a StepRequested, call the model, report the outcome.

Consumes `synod.steps.<role>` (one consumer group per role, so replicas share
the work) and publishes exactly one StepCompleted or StepFailed per step
attempt to `synod.task-events`, with an id derived from the request, so a
redelivered request produces a duplicate that consumers drop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from typing import Any, Literal

from synod.agents.ids import derived_id
from synod.agents.metrics import STEP_ATTEMPTS, STEP_CANCELS, STEP_DURATION
from synod.errors import SynodError
from synod.llm import OUTPUT_MODELS, LLMBackend, LLMError, LLMRequest
from synod.service.runtime import ServiceContext
from synod.transport import Received
from synod.transport.topics import (
    STEPS_CANCEL,
    STEPS_CODER,
    STEPS_RESEARCHER,
    TASK_EVENTS,
    WORKSPACE,
)
from synod.wire import Envelope, StepCompleted, StepFailed, StepRequested, Usage
from synod.wire.messages import StepCancelled

log = logging.getLogger("synod.agents")

WorkerRole = Literal["researcher", "coder"]
WORK_TOPICS = {"researcher": STEPS_RESEARCHER, "coder": STEPS_CODER}
MAX_CANCELLED_REMEMBERED = 10_000


def render_prompt(step: StepRequested) -> str:
    inputs = "\n\n".join(f"## Input from step {k}\n{v}" for k, v in sorted(step.inputs.items()))
    return f"# {step.title}\n\n{step.instructions}\n\n{inputs}".strip()


def output_text(parsed: Any, text: str) -> str:
    """The step's output as text: structured outputs as JSON, so later steps can read them."""
    if parsed is None:
        return text
    return json.dumps(parsed.model_dump(mode="json"), indent=1)


class Worker:
    def __init__(self, ctx: ServiceContext, role: WorkerRole, llm: LLMBackend) -> None:
        self.ctx = ctx
        self.role = role
        self.llm = llm
        # Cancellation (hedge losers): the attempt running each request, and the
        # requests cancelled lately (a cancel may arrive before its request).
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        self.cancelled: OrderedDict[str, None] = OrderedDict()

    async def handle_cancellable(self, msg: Received) -> None:
        """`handle`, unless a StepCancelled names the request; then nothing is published.

        The attempt runs as its own task so `on_cancel` can stop it mid-call; a
        stop of this handler itself (shutdown) still propagates as before.
        """
        request_id = msg.envelope.message_id
        if request_id in self.cancelled:
            self._note_cancel(msg, "before it started")
            return
        attempt = asyncio.ensure_future(self.handle(msg))
        self.in_flight[request_id] = attempt
        try:
            await attempt
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if request_id not in self.cancelled or (me is not None and me.cancelling()):
                raise
            self._note_cancel(msg, "while running")
        finally:
            self.in_flight.pop(request_id, None)

    async def on_cancel(self, msg: Received) -> None:
        """A StepCancelled from `synod.steps.cancel`: stop the named attempts run here."""
        body = msg.envelope.body
        if not isinstance(body, StepCancelled):
            return
        for request_id in body.request_ids:
            self.cancelled[request_id] = None
            running = self.in_flight.get(request_id)
            if running is not None and not running.done():
                running.cancel()
        while len(self.cancelled) > MAX_CANCELLED_REMEMBERED:
            self.cancelled.popitem(last=False)

    def _note_cancel(self, msg: Received, when: str) -> None:
        step = msg.envelope.body
        STEP_CANCELS.labels(self.role).inc()
        log.info(
            "step cancelled",
            extra={
                "task_id": msg.envelope.task_id,
                "step_id": getattr(step, "step_id", ""),
                "request_id": msg.envelope.message_id,
                "attempt": msg.envelope.attempt,
                "when": when,
            },
        )

    async def handle(self, msg: Received) -> None:
        step = msg.envelope.body
        if not isinstance(step, StepRequested):
            return  # not work: nothing else is published to work topics
        started = time.monotonic()
        request = LLMRequest(
            role=self.role,
            task_id=msg.envelope.task_id or "",
            step_id=step.step_id,
            prompt=render_prompt(step),
            attempt=msg.envelope.attempt,
            output_model=OUTPUT_MODELS[self.role],
            model=step.model or None,
            temperature=step.temperature,
            timeout_s=step.deadline_s,
            prompt_variant=step.prompt_variant,
            files=tuple(step.files),
        )
        body: StepCompleted | StepFailed
        try:
            # The step's deadline bounds the whole call, retries included.
            response = await asyncio.wait_for(self.llm.complete(request), step.deadline_s)
            body = StepCompleted(
                step_id=step.step_id,
                output=output_text(response.parsed, response.text)[:200_000],
                usage=response.usage,
                duration_s=round(time.monotonic() - started, 4),
            )
        except TimeoutError:
            body = StepFailed(
                step_id=step.step_id,
                error_class="transient",
                error=f"deadline of {step.deadline_s}s passed",
                reason="deadline",
                duration_s=round(time.monotonic() - started, 4),
            )
        except LLMError as exc:
            body = StepFailed(
                step_id=step.step_id,
                error_class=exc.error_class,
                error=str(exc)[:10_000],
                reason=exc.reason,
                usage=getattr(exc, "usage", None) or Usage(),
                duration_s=round(time.monotonic() - started, 4),
            )
        except SynodError as exc:
            body = StepFailed(step_id=step.step_id, error_class=exc.error_class, error=str(exc))
        if isinstance(body, StepCompleted) and step.files:
            await self._write_files(msg, step, body)
        outcome = Envelope.new(
            body,
            sender=self.ctx.sender,
            task_id=msg.envelope.task_id,
            message_id=derived_id(msg.envelope.message_id, "outcome"),
            causes=[msg.envelope.message_id],
            attempt=msg.envelope.attempt,
            trace=msg.envelope.trace,
        )
        await self.ctx.publish(TASK_EVENTS, outcome)
        result = "completed" if isinstance(body, StepCompleted) else "failed"
        reason = "" if isinstance(body, StepCompleted) else (body.reason or body.error_class)
        STEP_ATTEMPTS.labels(self.role, result, reason).inc()
        STEP_DURATION.labels(self.role, result).observe(body.duration_s)
        log.info(
            "step done",
            extra={
                "task_id": msg.envelope.task_id,
                "step_id": step.step_id,
                "outcome": outcome.type,
                "duration_s": body.duration_s,
            },
        )

    async def _write_files(self, msg: Received, step: StepRequested, done: StepCompleted) -> None:
        """The step's files on synod.workspace, before its StepCompleted: a completed
        step's files are always there to materialise. Each write is based on the
        version the planner said the step builds on and carries the step's lease
        token, so a stale copy of this step is fenced or detected, not applied blindly."""
        from synod.team.workspace import publish_record, writes_for

        task_id = msg.envelope.task_id or ""
        writes = writes_for(
            task_id,
            step.step_id,
            msg.envelope.message_id,
            self.ctx.sender.instance,
            step.files,
            step.title,
            done.output,
            base_versions=step.base_versions,
            lease_tokens=step.lease_tokens,
        )
        for write in writes:
            envelope = Envelope.new(
                write,
                sender=self.ctx.sender,
                task_id=task_id,
                message_id=write.write_id,
                causes=[msg.envelope.message_id],
                attempt=msg.envelope.attempt,
                trace=msg.envelope.trace,
            )
            await publish_record(self.ctx.publisher, self.ctx.topic(WORKSPACE), envelope)


def setup_worker(role: WorkerRole) -> Any:
    async def setup(ctx: ServiceContext) -> None:
        from synod.llm import select_backend

        worker = Worker(ctx, role, select_backend())
        # Steps are few and costly: commit within milliseconds of each finishing, so
        # a replica that takes over after a crash does not run finished steps again.
        ctx.consume(
            f"synod.{role}",
            [WORK_TOPICS[role]],
            worker.handle_cancellable,
            commit_interval_s=0.02,
        )
        # Every instance reads every cancel (a group of its own), from now on:
        # a cancel is for attempts running now, not for a restarted instance.
        ctx.consume(
            f"synod.{role}.cancel.{ctx.instance}",
            [STEPS_CANCEL],
            worker.on_cancel,
            auto_offset_reset="latest",
        )

    return setup
