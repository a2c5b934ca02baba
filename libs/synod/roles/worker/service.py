"""Researcher and coder: take a StepRequested, call the model, report the outcome.

Consumes `synod.steps.<role>` (one consumer group per role, so replicas share
the work) and publishes one StepCompleted or StepFailed per step attempt to
`synod.task-events`, with an id derived from the request, so a redelivered
request produces a duplicate that consumers drop.

Retry topics: a run that fails transiently is not reported yet. The request's
record (its original bytes and headers) is parked in `synod.retry.<role>.<n>`
with headers saying when it is due, where it first came from and why it
failed, and a StepRetrying goes to the task's log so the planner knows the
attempt is waiting, not lost. The worker consumes its role's retry topics in a
group of their own and runs a parked step again once it is due: a waiting
record holds back only the later records of its own key in its retry topic,
never the work topic. After the last tier the step is reported failed (the
planner decides what next, as for any failure) and the original request is
dead-lettered with its first source topic, partition and offset.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from synod.core.blackboard import parse
from synod.core.resilience.retrytopics import Park, RetryTiers
from synod.core.work import step_records
from synod.errors import SynodError
from synod.ids import derived_id
from synod.llm import OUTPUT_MODELS, LLMBackend, LLMError, LLMRequest, add_usage, select_backend
from synod.llm.budget import fit, left_of, worst_case
from synod.llm.errors import LLMBudgetError, LLMTransientError
from synod.llm.outputs import ResearchNotes
from synod.llm.routing import step_kind
from synod.llm.settings import DEFAULT_MAX_TOKENS, load_settings
from synod.roles.metrics import (
    STEP_ATTEMPTS,
    STEP_CANCELS,
    STEP_DURATION,
    STEP_RETRIES,
    STEP_RETRIES_EXHAUSTED,
)
from synod.roles.worker.settings import RetrySettings
from synod.service.host import ServiceContext
from synod.transport import DeadLetterPublisher, Received
from synod.transport.dispatcher import RawRecord
from synod.transport.topics import (
    DLQ,
    RETRY_CODER,
    RETRY_RESEARCHER,
    RETRY_TIERS,
    STEPS_CANCEL,
    STEPS_CODER,
    STEPS_RESEARCHER,
    TASK_EVENTS,
    WORKSPACE,
    TopicSpec,
)
from synod.transport.workspace import publish_record
from synod.wire import Envelope, StepCompleted, StepFailed, StepRequested, Usage
from synod.wire.messages import (
    FactPublished,
    ModelRoute,
    StepCancelled,
    StepRetrying,
    UsageReported,
)

log = logging.getLogger("synod.agents")

WorkerRole = Literal["researcher", "coder"]
WORK_TOPICS = {"researcher": STEPS_RESEARCHER, "coder": STEPS_CODER}
MAX_CANCELLED_REMEMBERED = 10_000
RETRY_TOPICS: dict[WorkerRole, tuple[TopicSpec, ...]] = {
    "researcher": RETRY_RESEARCHER,
    "coder": RETRY_CODER,
}
# The model call of the r-th retry of planner attempt a is numbered a + r * stride:
# a new call, so a new sample (the simulated backend draws its faults from the
# number), and never the number of another planner attempt.
RETRY_CALL_STRIDE = 1000

# Headers of a parked record, next to the original record's own.
H_RETRY = "synod-retry-count"
H_DUE_MS = "synod-retry-due-ms"
H_TOPIC = "synod-original-topic"
H_PARTITION = "synod-original-partition"
H_OFFSET = "synod-original-offset"
H_FIRST_FAILED_MS = "synod-first-failed-ms"
H_REASON = "synod-retry-reason"
# What the attempt's earlier runs spent (a Usage as JSON): its allowance covers them all.
H_SPENT = "synod-retry-spent"
RETRY_HEADERS = (
    H_RETRY,
    H_DUE_MS,
    H_TOPIC,
    H_PARTITION,
    H_OFFSET,
    H_FIRST_FAILED_MS,
    H_REASON,
    H_SPENT,
)


def render_prompt(step: StepRequested) -> str:
    inputs = "\n\n".join(f"## Input from step {k}\n{v}" for k, v in sorted(step.inputs.items()))
    return f"# {step.title}\n\n{step.instructions}\n\n{inputs}".strip()


def facts_to_publish(
    request_id: str, author: str, step: StepRequested, output: str
) -> list[FactPublished]:
    """The FactPublished records of a researcher's output (none if it has no facts);
    ids derive from the request and the key, so a rerun of the request repeats them."""
    try:
        notes = ResearchNotes.model_validate_json(output)
    except ValueError:
        return []
    read = parse(step.inputs.get("blackboard", ""))
    out: dict[str, FactPublished] = {}
    for claim in notes.facts:
        out[claim.key] = FactPublished(
            fact_id=derived_id(request_id, "fact", claim.key),
            step_id=step.step_id,
            key=claim.key,
            value=claim.value,
            confidence=claim.confidence,
            author=author,
            observed=sorted({f.fact_id for f in read if f.key == claim.key}),
        )
    return list(out.values())


def output_text(parsed: Any, text: str) -> str:
    """The step's output as text: structured outputs as JSON, so later steps can read them."""
    if parsed is None:
        return text
    return json.dumps(parsed.model_dump(mode="json"), indent=1)


@dataclass(frozen=True)
class RetryState:
    """Where a parked record stands: its retry tier, when it is due, where it began."""

    retry: int  # retries taken so far (the tier it waits in)
    due_ms: int
    topic: str  # the work topic record it started as
    partition: int
    offset: int
    first_failed_ms: int
    reason: str
    spent: Usage = field(default_factory=Usage)

    @staticmethod
    def first(record: RawRecord, failed_ms: int) -> RetryState:
        """A record of the work topic that just failed for the first time."""
        return RetryState(
            0, failed_ms, record.topic, record.partition, record.offset, failed_ms, ""
        )

    @staticmethod
    def of(record: RawRecord, tier: int) -> RetryState:
        """Read from a record of retry tier `tier`. The topic names the tier; a missing
        or garbled header falls back to the record itself, so the step still runs."""
        found = {k: v.decode(errors="replace") for k, v in record.headers if k in RETRY_HEADERS}

        def number(key: str, default: int) -> int:
            text = found.get(key, "")
            return int(text) if text.lstrip("-").isdigit() else default

        now_ms = record.timestamp_ms
        return RetryState(
            retry=tier,
            due_ms=number(H_DUE_MS, now_ms),
            topic=found.get(H_TOPIC) or record.topic,
            partition=number(H_PARTITION, record.partition),
            offset=number(H_OFFSET, record.offset),
            first_failed_ms=number(H_FIRST_FAILED_MS, now_ms),
            reason=found.get(H_REASON, ""),
            spent=_spent(found.get(H_SPENT, "")),
        )

    def headers(self) -> list[tuple[str, bytes]]:
        values = {
            H_RETRY: self.retry,
            H_DUE_MS: self.due_ms,
            H_TOPIC: self.topic,
            H_PARTITION: self.partition,
            H_OFFSET: self.offset,
            H_FIRST_FAILED_MS: self.first_failed_ms,
            H_REASON: self.reason,
            H_SPENT: self.spent.model_dump_json(),
        }
        return [(k, str(v).encode()) for k, v in values.items()]


def _spent(text: str) -> Usage:
    try:
        return Usage.model_validate_json(text) if text else Usage()
    except ValueError:
        return Usage()  # a garbled header: the planner's fold still has every run's usage


def original_headers(record: RawRecord) -> list[tuple[str, bytes]]:
    """The record's headers without the retry ones (a replayed dead letter starts afresh)."""
    return [(k, v) for k, v in record.headers if k not in RETRY_HEADERS]


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class Worker:
    """Runs step requests; with `retry` tiers, parks transient failures in retry topics.

    Without `retry` every failure is reported at once (a worker used on its own, or
    SYNOD_RETRY_DELAYS_S empty).
    """

    def __init__(
        self,
        ctx: ServiceContext,
        role: WorkerRole,
        llm: LLMBackend,
        retry: RetryTiers | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if retry is not None and retry.tiers > len(RETRY_TOPICS[role]):
            raise ValueError(f"{retry.tiers} retry tiers, but {RETRY_TIERS} retry topics per role")
        self.ctx = ctx
        self.role = role
        self.llm = llm
        self.retry = retry
        self.rng = rng or random.Random()
        self.clock = clock  # wall clock: due times cross processes
        # tier n (1-based) -> its topic's name on the cluster, and back
        self.retry_topics = [ctx.topic(t) for t in RETRY_TOPICS[role]]
        self.dead_letter = DeadLetterPublisher(ctx.publisher, ctx.topic(DLQ), ctx.sender)
        # Cancellation (hedge losers): the attempt running each request, and the
        # requests cancelled lately (a cancel may arrive before its request).
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        self.cancelled: OrderedDict[str, None] = OrderedDict()
        # The worst case of the call each request has out: what a cancel charges.
        self.calling: dict[str, Usage] = {}
        self.default_max_tokens = default_max_tokens

    async def handle_cancellable(self, msg: Received) -> None:
        """`handle`, unless a StepCancelled names the request; then nothing is published.

        The attempt runs as its own task so `on_cancel` can stop it mid-call; a
        stop of this handler itself (shutdown) still propagates as before.
        """
        request_id = msg.envelope.message_id
        if request_id in self.cancelled:
            self._note_cancel(msg, "before it started")
            await self._charge_cancel(msg, Usage())
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
            await self._charge_cancel(msg, self.calling.get(request_id, Usage()))
        finally:
            self.in_flight.pop(request_id, None)
            self.calling.pop(request_id, None)

    async def _charge_cancel(self, msg: Received, usage: Usage) -> None:
        """A cancelled attempt's usage on the task's log. The call cut off returns no
        usage, and the provider may bill it: its worst case is charged (docs/adr/0011).
        The record also ends the attempt's grant. Nothing to say for an attempt that
        had no allowance and made no call."""
        step = msg.envelope.body
        if not isinstance(step, StepRequested) or (step.allowance is None and not usage.calls):
            return
        if usage.calls and (step.allowance is None or step.allowance.cost_usd is None):
            # No cost limit to keep: a price nobody charged would only mislead.
            usage = usage.model_copy(update={"cost_usd": 0.0, "unpriced_calls": usage.calls})
        report = UsageReported(request_id=msg.envelope.message_id, what="cancelled", usage=usage)
        await self.ctx.publish(
            TASK_EVENTS,
            Envelope.new(
                report,
                sender=self.ctx.sender,
                task_id=msg.envelope.task_id,
                message_id=derived_id(msg.envelope.message_id, "cancelled"),
                causes=[msg.envelope.message_id],
                attempt=msg.envelope.attempt,
                trace=msg.envelope.trace,
            ),
        )

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

    def tier_of(self, topic: str) -> int:
        """The retry tier a topic is (1-based), 0 for the work topic."""
        return self.retry_topics.index(topic) + 1 if topic in self.retry_topics else 0

    async def handle(self, msg: Received) -> None:
        step = msg.envelope.body
        if not isinstance(step, StepRequested):
            return  # not work: nothing else is published to work topics
        tier = self.tier_of(msg.record.topic)
        state = RetryState.of(msg.record, tier) if tier else None
        if state is not None:
            await self._until_due(state)
        body = await self.run(msg, step, tier, state.spent if state is not None else Usage())
        self._count(body)
        transient = isinstance(body, StepFailed) and body.error_class == "transient"
        if isinstance(body, StepFailed) and transient and self.retry is not None:
            now = self.clock()
            state = state or RetryState.first(msg.record, int(now * 1000))
            decision = self.retry.next_retry(
                error_class=body.error_class,
                reason=body.reason or body.error_class,
                retries_so_far=state.retry,
                retry_after_s=body.retry_after_s,
                rng=self.rng,
                now=now,
            )
            if isinstance(decision, Park):
                await self._park(msg, step, body, state, decision)
                return
            await self._give_up(msg, body, state)
        if isinstance(body, StepCompleted) and self.role == "researcher":
            await self._publish_facts(msg, step, body)
        # The step's files go out before its StepCompleted (synod.core.work), so a
        # completed step's files are always there to materialise; each write is
        # based on the version the planner named and carries the step's lease token.
        outcome: Envelope[Any] | None = None
        for log_name, envelope in step_records(msg.envelope, body, self.ctx.sender):
            if log_name == "workspace":
                await publish_record(self.ctx.publisher, self.ctx.topic(WORKSPACE), envelope)
            else:
                outcome = envelope
                await self.ctx.publish(TASK_EVENTS, envelope)
        assert outcome is not None
        log.info(
            "step done",
            extra={
                "task_id": msg.envelope.task_id,
                "step_id": step.step_id,
                "outcome": outcome.type,
                "duration_s": body.duration_s,
                "retry": tier,
            },
        )

    async def run(
        self, msg: Received, step: StepRequested, retry: int = 0, spent: Usage | None = None
    ) -> StepCompleted | StepFailed:
        """One run of the step: the model call, bounded by the step's deadline and,
        with an allowance, made only if its worst case fits what is left of it."""
        started = time.monotonic()
        attempt = msg.envelope.attempt
        request = LLMRequest(
            role=self.role,
            task_id=msg.envelope.task_id or "",
            step_id=step.step_id,
            prompt=render_prompt(step),
            attempt=attempt + RETRY_CALL_STRIDE * retry,
            output_model=OUTPUT_MODELS[self.role],
            model=step.model or None,
            temperature=step.temperature,
            timeout_s=step.deadline_s,
            prompt_variant=step.prompt_variant,
            files=tuple(step.files),
            kind=step_kind(step.step_id, step.prompt_variant),
            labels=step.labels,
        )
        try:
            left = None if step.allowance is None else left_of(step.allowance, spent or Usage())
            request = fit(request, left, self.default_max_tokens)
        except LLMBudgetError as exc:
            return StepFailed(
                step_id=step.step_id,
                error_class="budget",
                error=str(exc)[:10_000],
                reason="budget_exhausted",
            )
        self.calling[msg.envelope.message_id] = worst_case(request, self.default_max_tokens)
        try:
            # The step's deadline bounds the whole call, retries included.
            response = await asyncio.wait_for(self.llm.complete(request), step.deadline_s)
            return StepCompleted(
                step_id=step.step_id,
                output=output_text(response.parsed, response.text)[:200_000],
                usage=response.usage,
                duration_s=round(time.monotonic() - started, 4),
                route=response.route or ModelRoute(model=response.model),
            )
        except TimeoutError:
            return StepFailed(
                step_id=step.step_id,
                error_class="transient",
                error=f"deadline of {step.deadline_s}s passed",
                reason="deadline",
                duration_s=round(time.monotonic() - started, 4),
            )
        except LLMError as exc:
            hint = exc.retry_after_s if isinstance(exc, LLMTransientError) else None
            return StepFailed(
                step_id=step.step_id,
                error_class=exc.error_class,
                error=str(exc)[:10_000],
                reason=exc.reason,
                usage=getattr(exc, "usage", None) or Usage(),
                duration_s=round(time.monotonic() - started, 4),
                retry_after_s=max(hint, 0.0) if hint is not None else None,
                route=exc.route or ModelRoute(),
            )
        except SynodError as exc:
            return StepFailed(step_id=step.step_id, error_class=exc.error_class, error=str(exc))

    def _count(self, body: StepCompleted | StepFailed) -> None:
        result = "completed" if isinstance(body, StepCompleted) else "failed"
        reason = "" if isinstance(body, StepCompleted) else (body.reason or body.error_class)
        STEP_ATTEMPTS.labels(self.role, result, reason).inc()
        STEP_DURATION.labels(self.role, result).observe(body.duration_s)

    async def _until_due(self, state: RetryState) -> None:
        wait_s = state.due_ms / 1000 - self.clock()
        if self.retry is not None:
            # A due time beyond any tier's reach is a bad header: bound the wait.
            wait_s = min(wait_s, self.retry.longest_wait_s())
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    async def _park(
        self,
        msg: Received,
        step: StepRequested,
        failed: StepFailed,
        state: RetryState,
        park: Park,
    ) -> None:
        """Put the request in its next retry topic; tell the task's log it waits."""
        reason = failed.reason or failed.error_class
        due_ms = int(park.due_at * 1000)
        notice = StepRetrying(
            step_id=step.step_id,
            retry=park.tier,
            due_at=_utc(due_ms),
            reason=reason,
            error=failed.error,
            deadline_s=step.deadline_s,
            usage=failed.usage,
        )
        # The notice first: once the parked record is out it may run (and complete)
        # at once, and the log should say it waited before it says it finished.
        await self.ctx.publish(
            TASK_EVENTS,
            Envelope.new(
                notice,
                sender=self.ctx.sender,
                task_id=msg.envelope.task_id,
                message_id=derived_id(msg.envelope.message_id, "retry", park.tier),
                causes=[msg.envelope.message_id],
                attempt=msg.envelope.attempt,
                trace=msg.envelope.trace,
            ),
        )
        parked = RetryState(
            retry=park.tier,
            due_ms=due_ms,
            topic=state.topic,
            partition=state.partition,
            offset=state.offset,
            first_failed_ms=state.first_failed_ms,
            reason=reason,
            spent=add_usage(state.spent, failed.usage),
        )
        record = msg.record
        await self.ctx.publisher.publish_raw(
            self.retry_topics[park.tier - 1],
            record.value,
            key=record.key,
            headers=original_headers(record) + parked.headers(),
        )
        STEP_RETRIES.labels(self.role, str(park.tier), reason).inc()
        log.info(
            "step parked for retry",
            extra={
                "task_id": msg.envelope.task_id,
                "step_id": step.step_id,
                "retry": park.tier,
                "delay_s": round(park.delay_s, 3),
                "reason": reason,
            },
        )

    async def _give_up(self, msg: Received, failed: StepFailed, state: RetryState) -> None:
        """The last tier failed too: keep the original request in the DLQ."""
        reason = failed.reason or failed.error_class
        record = msg.record
        original = RawRecord(
            topic=state.topic,
            partition=state.partition,
            offset=state.offset,
            key=record.key,
            value=record.value,
            headers=tuple(original_headers(record)),
            timestamp_ms=record.timestamp_ms,
        )
        await self.dead_letter(
            original,
            reason,
            f"step {failed.step_id} failed {state.retry + 1} times; last: {failed.error}",
            failed.error_class,
            attempts=state.retry + 1,
            first_failed_at=_utc(state.first_failed_ms),
        )
        STEP_RETRIES_EXHAUSTED.labels(self.role, reason).inc()

    async def _publish_facts(self, msg: Received, step: StepRequested, done: StepCompleted) -> None:
        """The step's facts on the task's log, before its StepCompleted (so the log has
        a step's facts before it is done). Each fact replaces the facts of its key
        the step was handed: what it observed (docs/blackboard.md)."""
        for fact in facts_to_publish(
            msg.envelope.message_id, self.ctx.sender.instance, step, done.output
        ):
            envelope = Envelope.new(
                fact,
                sender=self.ctx.sender,
                task_id=msg.envelope.task_id,
                message_id=fact.fact_id,
                causes=[msg.envelope.message_id],
                attempt=msg.envelope.attempt,
                trace=msg.envelope.trace,
            )
            await self.ctx.publish(TASK_EVENTS, envelope)


def install_worker(
    ctx: ServiceContext,
    role: WorkerRole,
    llm: LLMBackend,
    retry: RetryTiers | None,
) -> Worker:
    """The worker's consumers: its work topic and, with retry tiers, its retry topics."""
    worker = Worker(ctx, role, llm, retry, default_max_tokens=load_settings().max_tokens)
    # Steps are few and costly: commit within milliseconds of each finishing, so
    # a replica that takes over after a crash does not run finished steps again.
    ctx.consume(
        f"synod.{role}", [WORK_TOPICS[role]], worker.handle_cancellable, commit_interval_s=0.02
    )
    if retry is not None:
        # A group of its own: parked records waiting for their due time take this
        # consumer's slots, never the work topic's. A cancel stops a parked
        # attempt too, waiting or running.
        topics = list(RETRY_TOPICS[role][: retry.tiers])
        ctx.consume(
            f"synod.{role}.retry", topics, worker.handle_cancellable, commit_interval_s=0.02
        )
    # Every instance reads every cancel (a group of its own), from now on:
    # a cancel is for attempts running now, not for a restarted instance.
    ctx.consume(
        f"synod.{role}.cancel.{ctx.instance}",
        [STEPS_CANCEL],
        worker.on_cancel,
        auto_offset_reset="latest",
    )
    return worker


def setup_worker(role: WorkerRole) -> Any:
    async def setup(ctx: ServiceContext) -> None:
        install_worker(ctx, role, select_backend(), RetrySettings().tiers(RETRY_TIERS))

    return setup
