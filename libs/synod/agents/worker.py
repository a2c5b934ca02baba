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
from typing import Any, Literal

from synod.agents.ids import derived_id
from synod.agents.metrics import STEP_ATTEMPTS, STEP_DURATION
from synod.errors import SynodError
from synod.llm import OUTPUT_MODELS, LLMBackend, LLMError, LLMRequest
from synod.service.runtime import ServiceContext
from synod.transport import Received
from synod.transport.topics import STEPS_CODER, STEPS_RESEARCHER, TASK_EVENTS, WORKSPACE
from synod.wire import Envelope, StepCompleted, StepFailed, StepRequested, Usage

log = logging.getLogger("synod.agents")

WorkerRole = Literal["researcher", "coder"]
WORK_TOPICS = {"researcher": STEPS_RESEARCHER, "coder": STEPS_CODER}


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
        ctx.consume(f"synod.{role}", [WORK_TOPICS[role]], worker.handle, commit_interval_s=0.02)

    return setup
