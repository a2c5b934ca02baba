"""Planner: the orchestrator of each task, event-sourced from the task's own log.

- Intake: a TaskSubmitted on `synod.tasks` is accepted by appending it, with
  its own message id, to `synod.task-events`. Everything after that is driven
  by the task's log, so there is one ordered history per task.
- Every event of `synod.task-events` (and the time, and the supervisor's
  quarantine) goes into the task's `TaskMachine` (`step`); what comes out
  (`ready`: records with their keys, a plan or workspace request) the
  planner carries out and hands back (`advance`). It decides nothing itself.
- The log is also the planner's outbox: a step request, vote request or
  outcome goes to the task's log first and on to its topic once the broker
  has it, without reading it back (ADR 0012, `SYNOD_PLANNER_OUTBOX`): `ack`
  forwards on the log's ack, and a crash between the two writes is repaired
  when the record is read back (forwarded again, same id); `transaction`
  writes both in one Kafka transaction (exactly once); `read-back` forwards
  only when the planner handles the record from the log.
- State lives only in the log. When partitions are assigned, the planner folds
  them before handling anything, so a restarted or new planner instance carries
  on where the last one stopped: their latest snapshot (the records of their
  unfinished tasks, `synod.roles.planner.snapshots`) and the tail after it, or
  from the beginning without one. Actions have derived ids, so whatever is
  redone after a crash is a duplicate consumers drop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Literal

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from synod.core.quarantine import QuarantineBook
from synod.core.resilience.backoff import RetryPolicy
from synod.core.task import (
    RESAMPLE_REASONS,
    CheckWorkspace,
    Destination,
    Logged,
    PlanMade,
    PlanningFailed,
    Quarantined,
    RequestPlan,
    TaskConfig,
    TaskMachine,
    Tick,
    WorkspaceChecked,
    carry,
)
from synod.core.task import budget as task_budget
from synod.core.task.escalation import answer_id
from synod.core.task.wakes import Wakes
from synod.errors import DecodeError, SynodError
from synod.ids import derived_id
from synod.llm import LLMBackend, LLMError, LLMRequest, LLMTimeoutError, PlanOutput, select_backend
from synod.llm.budget import fit
from synod.llm.errors import LLMBudgetError
from synod.llm.settings import load_settings
from synod.observability import record_task_end
from synod.roles.metrics import PLANNER_ACTIONS
from synod.roles.planner import quarantine
from synod.roles.planner.owners import Lanes
from synod.roles.planner.snapshots import PlannerSnapshots, PlannerSnapshotSettings
from synod.service.host import ServiceContext
from synod.transport import KeyOrderedConsumer, Received
from synod.transport.outbox import Outbox, Outgoing
from synod.transport.reader import PartitionReader
from synod.transport.topics import (
    ESCALATIONS,
    RESULTS,
    STEPS_CANCEL,
    STEPS_CODER,
    STEPS_RESEARCHER,
    TASK_EVENTS,
    TASKS,
    VOTES,
    WORKSPACE,
    TopicSpec,
)
from synod.transport.workspace import materialise, publish_record
from synod.wire import (
    Codec,
    Envelope,
    PlanStep,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    VoteRequested,
)
from synod.wire.messages import (
    Budget,
    EscalationAnswered,
    OnExhausted,
    StepCancelled,
    Usage,
    UsageReported,
    utc_now,
)

log = logging.getLogger("synod.agents")

DESTINATIONS: dict[Destination, TopicSpec] = {
    "steps.researcher": STEPS_RESEARCHER,
    "steps.coder": STEPS_CODER,
    "steps.cancel": STEPS_CANCEL,
    "votes": VOTES,
    "results": RESULTS,
    "escalations": ESCALATIONS,
}
MAX_TASKS_IN_MEMORY = 50_000
SWEEP_YIELD_EVERY = 100  # machines a deadline sweep steps between yields to the loop
PLAN_ATTEMPTS = 3
WORKSPACE_READ_ATTEMPTS = 3
MAX_ROUNDS = 4  # ready/advance rounds per input: a plan or a workspace check feeds back
# The backoffs between those reads and between planning calls (the loops count
# the attempts); the random source only spreads the retries.
WORKSPACE_READ_RETRY = RetryPolicy(base_s=0.5, cap_s=2.0, max_attempts=None)
PLANNING_RETRY = RetryPolicy(base_s=0.2, cap_s=2.0, max_attempts=None)
_jitter = random.Random()


def _delay(policy: RetryPolicy, attempt: int) -> float:
    delay = policy.next_delay(attempt, "transient", _jitter)
    assert delay is not None  # no attempt limit
    return delay


def action_kind(envelope: Envelope[Any]) -> tuple[str, str]:
    """(action, kind) labels of what the planner published, for the metrics."""
    body = envelope.body
    if isinstance(body, StepRequested):
        if body.prompt_variant.startswith("revise-"):
            return "step", "revision"
        if body.prompt_variant == "hedge":
            return "step", "hedge"
        return "step", "first" if envelope.attempt == 0 else "retry"
    if isinstance(body, StepCancelled):
        return "cancel", body.reason
    if isinstance(body, VoteRequested):
        return "vote", "first" if body.proposal_id.endswith("/answer") else "revote"
    if isinstance(body, TaskCompleted):
        return "outcome", "completed"
    if isinstance(body, TaskFailed):
        return "outcome", f"failed_{body.error_class}"
    return envelope.type, ""


class PlannerSettings(BaseSettings):
    """How the planner runs each task (SYNOD_*); the defaults suit real models."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_", extra="ignore")

    step_deadline_s: float = Field(default=120.0, gt=0, description="bound on one step attempt")
    vote_deadline_s: float = Field(default=60.0, gt=0, description="bound on one ballot")
    max_step_attempts: int = Field(default=3, ge=1, description="attempts of a step in all")
    planner_outbox: Literal["ack", "transaction", "read-back"] = Field(
        default="ack",
        description="when a logged record goes on to its topic (ADR 0012)",
    )
    # Escalation and budgets (docs/adr/0011).
    escalate: bool = Field(
        default=True, description="put an undecided task to a person instead of failing it"
    )
    escalation_timeout_s: float = Field(
        default=86_400.0, gt=0, description="how long a parked task waits for its answer"
    )
    budget_max_tokens: int | None = Field(default=None, ge=1, description="default budget")
    budget_max_cost_usd: float | None = Field(default=None, gt=0, description="default budget")
    budget_max_model_calls: int | None = Field(default=None, ge=1, description="default budget")
    budget_on_exhausted: OnExhausted = "fail"

    def task_config(self) -> TaskConfig:
        limits = (self.budget_max_tokens, self.budget_max_cost_usd, self.budget_max_model_calls)
        default_budget = (
            Budget(
                max_tokens=self.budget_max_tokens,
                max_cost_usd=self.budget_max_cost_usd,
                max_model_calls=self.budget_max_model_calls,
                on_exhausted=self.budget_on_exhausted,
            )
            if any(x is not None for x in limits)
            else None
        )
        return TaskConfig(
            max_step_attempts=self.max_step_attempts,
            step_deadline_s=self.step_deadline_s,
            vote_deadline_s=self.vote_deadline_s,
            default_budget=default_budget,
            escalate=self.escalate,
            escalation_timeout_s=self.escalation_timeout_s,
        )


class Planner:
    def __init__(
        self,
        ctx: ServiceContext,
        llm: LLMBackend,
        config: TaskConfig | None = None,
        outbox: Literal["ack", "transaction", "read-back"] | None = None,
    ) -> None:
        self.ctx = ctx
        self.llm = llm
        self.config = config or PlannerSettings().task_config()
        self.codec = Codec()
        self.tasks: OrderedDict[str, TaskMachine] = OrderedDict()
        # One input at a time per task: the sweep and the consumer both step a
        # machine, and a ready() carried out twice at once would log twice.
        self.locks: dict[str, asyncio.Lock] = {}
        self.partition_of: dict[str, int] = {}  # task -> its partition of synod.task-events
        self.consumer: KeyOrderedConsumer | None = None
        self.quarantine = QuarantineBook()  # fed by quarantine.follow
        # Who holds each step topic's partitions (fed by Lanes.follow): where a
        # hedge copy's key must land to reach another worker (docs/cap.md).
        self.lanes = Lanes()
        self.outbox_mode: carry.OutboxMode = outbox or PlannerSettings().planner_outbox
        self._outbox: Outbox | None = None  # made on first use
        # ack: records this instance forwarded already; read back, they are folded
        # only. One its predecessor logged is forwarded again (same id).
        self.forwarded = carry.Forwarded(self.outbox_mode, MAX_TASKS_IN_MEMORY)
        self.default_max_tokens = load_settings().max_tokens
        self.snapshots: PlannerSnapshots | None = None  # set up by setup_planner
        # Partitions whose rebuild is under way: their machines are partial (a
        # snapshot without its tail), so the sweep must not act on them yet.
        self.rebuilding: set[int] = set()
        self.rebuild_ended = asyncio.Event()  # set whenever no rebuild is under way
        self.rebuild_ended.set()
        self.rebuilt_events = 0  # records folded by the latest rebuild
        # When each task in memory next needs the time (its machine's next_wake, set
        # after every run): the sweep steps only the tasks due, not all it holds.
        self.wakes = Wakes()
        self.swept_quarantine: frozenset[str] | None = None  # as the last sweep saw it

    def machine(self, task_id: str) -> TaskMachine:
        machine = self.tasks.get(task_id)
        if machine is None:
            machine = self.tasks[task_id] = TaskMachine(task_id, self.config)
            self.locks[task_id] = asyncio.Lock()
            # Not run yet (folded by a rebuild, say): the next sweep steps it once.
            self.wakes.soon(task_id)
            while len(self.tasks) > MAX_TASKS_IN_MEMORY:
                oldest, _ = self.tasks.popitem(last=False)  # its log can rebuild it
                self.locks.pop(oldest, None)
                self.wakes.drop(oldest)
        self.tasks.move_to_end(task_id)
        return machine

    # ------------------------------------------------------------ handlers

    async def handle(self, msg: Received) -> None:
        envelope = msg.envelope
        if envelope.task_id is None:
            return
        if msg.record.topic == self.ctx.topic(TASKS):
            if carry.accepts(envelope):
                # Accept: the task's history starts in its log, same message id.
                await self.ctx.publish(TASK_EVENTS, envelope)
            return
        if msg.record.topic == self.ctx.topic(ESCALATIONS):
            body = envelope.body
            if isinstance(body, EscalationAnswered):
                # Into the log as sent (its author's signature stays valid), and only
                # under the one id an answer to this escalation has: a second answer
                # is the same record, and the log keeps the first.
                if envelope.message_id != answer_id(body.escalation_id):
                    log.warning(
                        "an answer not under its escalation's answer id: not logged",
                        extra={"task_id": envelope.task_id, "message_id": envelope.message_id},
                    )
                    return
                await self.ctx.publish(TASK_EVENTS, envelope)
            return
        while msg.record.partition in self.rebuilding:
            # The consumer may hand over a record while its partition is still
            # being rebuilt: folded now, it would come before older records of
            # its task (a decision before its vote request, ignored for good).
            await self.rebuild_ended.wait()
        machine = self.machine(envelope.task_id)
        self.partition_of[envelope.task_id] = msg.record.partition
        async with self.locks[envelope.task_id]:
            machine.step(Quarantined(self.quarantine.active(utc_now())))
            machine.step(self.lanes.owners())
            # React even to an event folded before (during a rebuild): the actions
            # are a function of the state, and repeats carry the same ids. A record
            # this instance forwarded already comes back to be folded only.
            machine.step(self.forwarded.logged(envelope))
            if self.snapshots is not None:
                self.snapshots.keep(
                    envelope.task_id, msg.record.offset, msg.record.value, envelope.message_id
                )
            await self.run(machine)

    async def run(self, machine: TaskMachine) -> None:
        """Carry out what the machine says (synod.core.task.carry builds every record),
        until it says nothing new; then schedule the task's next wake."""
        try:
            await self._run(machine)
        except BaseException:
            # What it said is still to do (ready() says it again until advanced):
            # the next sweep tries again, as it would have for every task before.
            self.wakes.soon(machine.task_id)
            raise
        self.wakes.set(machine.task_id, machine.next_wake())

    async def _run(self, machine: TaskMachine) -> None:
        for _ in range(MAX_ROUNDS):
            ready = machine.ready()
            if not ready.actions:
                return
            answered = False
            for item in carry.carry_out(machine, ready, self.ctx.sender, self.outbox_mode):
                if isinstance(item, carry.Ask):
                    answered = True
                    machine.step(await self.answer(machine, item.action))
                elif self.outbox_mode == "read-back":
                    for w in item:
                        await self.publish(machine, w)
                else:
                    await self.write(machine, item)
            machine.advance(ready)
            if not answered:
                return  # nothing fed back: the rest follows from the log

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            # A transactional id per instance: a restarted instance fences its
            # predecessor and aborts what it left open.
            txn_id = f"{self.ctx.kafka.topic_prefix}synod.planner.{self.ctx.instance}"
            self._outbox = Outbox(
                self.ctx.kafka.bootstrap,
                txn_id if self.outbox_mode == "transaction" else None,
                codec=self.codec,
                client_id=self.ctx.instance,
                stamper=self.ctx.publisher.stamper,
                signer=self.ctx.publisher.signer,
            )
        return self._outbox

    async def close_outbox_on_stop(self) -> None:
        """A background job: on the service's stop, the outbox's producer closes too."""
        try:
            await asyncio.Event().wait()
        finally:
            if self._outbox is not None:
                await self._outbox.stop()

    def _topic(self, to: carry.Log) -> str:
        if to == "task-events":
            return self.ctx.topic(TASK_EVENTS)
        if to == "workspace":
            return self.ctx.topic(WORKSPACE)
        return self.ctx.topic(DESTINATIONS[to])

    def _sent(self, machine: TaskMachine, w: carry.Write) -> None:
        """Metrics of one record as it is handed over to be written."""
        for one in (w, *w.copies):
            if one.to == "results":  # end-to-end latency and outcome counts
                record_task_end(machine.submitted, one.envelope, utc_now())
        if w.to == "task-events":
            PLANNER_ACTIONS.labels(*action_kind(w.envelope)).inc()
            log.info("published", extra={"task_id": machine.task_id, "type": w.envelope.type})

    async def write(self, machine: TaskMachine, writes: list[carry.Write]) -> None:
        """One batch through the outbox: a log record and its copies and grants."""
        out = []
        for w in writes:
            self._sent(machine, w)
            copies = tuple((self._topic(c.to), c.content_type, c.key) for c in w.copies)
            out.append(
                Outgoing(
                    self._topic(w.to), w.envelope, w.content_type, w.key, w.partition_key, copies
                )
            )
        await self.outbox.publish_all(out)
        if not self.outbox.atomic:
            self.forwarded.wrote(writes)

    async def publish(self, machine: TaskMachine, w: carry.Write) -> None:
        """One record on its own (outbox `read-back`)."""
        if w.to == "workspace":
            await publish_record(self.ctx.publisher, self._topic(w.to), w.envelope)
        elif w.to == "task-events":
            await self.ctx.publish(TASK_EVENTS, w.envelope)
        else:
            await self.ctx.publisher.publish(self._topic(w.to), w.envelope, w.content_type, w.key)
        self._sent(machine, w)

    async def answer(
        self, machine: TaskMachine, action: RequestPlan | CheckWorkspace
    ) -> PlanMade | PlanningFailed | WorkspaceChecked:
        """The machine's answer to a question: a plan from the model, a workspace read."""
        if isinstance(action, RequestPlan):
            return await self.make_plan(machine)
        return await self.check_workspace(machine, action)

    # ------------------------------------------------------------ workspace

    async def check_workspace(
        self, machine: TaskMachine, check: CheckWorkspace
    ) -> WorkspaceChecked:
        """Fold the task's workspace: the answer is only voted on once every
        concurrent write is merged into its file, so none is lost unseen."""
        for attempt in range(WORKSPACE_READ_ATTEMPTS):
            try:
                space = await materialise(
                    self.ctx.kafka.bootstrap,
                    self.ctx.kafka.topic_prefix,
                    machine.task_id,
                    winners=dict(check.winners),
                    mode="eventual",
                )
                break
            except (SynodError, KafkaError, OSError) as exc:
                # Nothing else would ask again: the task's steps are all done. After
                # the last attempt the record is dead-lettered and the task's own
                # deadline ends it, naming the vote it waited for.
                if attempt + 1 == WORKSPACE_READ_ATTEMPTS:
                    raise
                log.warning(
                    "reading the workspace failed; retrying",
                    extra={"task_id": machine.task_id, "error": repr(exc)},
                )
                await asyncio.sleep(_delay(WORKSPACE_READ_RETRY, attempt))
        if space.conflicted:
            log.info(
                "workspace conflicts",
                extra={"task_id": machine.task_id, "paths": sorted(space.conflicted)},
            )
        return WorkspaceChecked(check.winners, space.conflicted)

    def _circuit_wait(self, machine: TaskMachine, exc: LLMError) -> float | None:
        """Seconds to wait out an open breaker before planning again, None to give up."""
        if exc.reason != "circuit_open" or machine.submitted is None:
            return None
        hint = getattr(exc, "retry_after_s", None) or 1.0
        ends = machine.submitted.created_at + timedelta(seconds=machine.submitted.body.deadline_s)
        left = (ends - utc_now()).total_seconds() - self.config.step_deadline_s
        if left <= 0:
            return None
        return min(hint, left, 30.0)

    async def make_plan(self, machine: TaskMachine) -> PlanMade | PlanningFailed:
        assert machine.submitted is not None
        goal = machine.submitted.body.goal
        last_error: LLMError | None = None
        attempt, calls = 0, 0
        while attempt < PLAN_ATTEMPTS:
            calls += 1
            request = LLMRequest(
                role="planner",
                task_id=machine.task_id,
                step_id="plan",
                attempt=calls - 1,
                prompt=(
                    f"{goal}\n\nPlan the work for this goal as a small DAG of steps for "
                    "researcher and coder agents; each step names what it depends on."
                ),
                output_model=PlanOutput,
                labels=machine.submitted.body.labels,  # the task's model.planner label
            )
            room = task_budget.free(machine)
            allowance = None if room is None else task_budget.grant(room)
            try:
                if room is not None:
                    if allowance is None:
                        raise LLMBudgetError(
                            "planning: the task's budget has no room left for a call",
                            reason="budget_exhausted",
                        )
                    request = fit(request, allowance, self.default_max_tokens)
                # A hung call must not hold the task (and its key's lane) forever.
                response = await asyncio.wait_for(
                    self.llm.complete(request), self.config.step_deadline_s
                )
                await self._report_usage(machine, calls, response.usage)
            except TimeoutError:
                last_error = LLMTimeoutError(
                    f"planning: no reply within {self.config.step_deadline_s:g} s"
                )
                attempt += 1
                continue
            except LLMError as exc:
                last_error = exc
                await self._report_usage(machine, calls, exc.usage)
                if exc.error_class != "transient" and exc.reason not in RESAMPLE_REASONS:
                    break
                wait = self._circuit_wait(machine, exc)
                if wait is not None:
                    # Every model's breaker is open: no call was made, so this is no
                    # attempt used. Wait the breaker out while the task has time,
                    # instead of failing a task because the provider blinked.
                    await asyncio.sleep(wait)
                    continue
                await asyncio.sleep(_delay(PLANNING_RETRY, attempt))
                attempt += 1
                continue
            plan = response.output(PlanOutput)
            steps = [
                PlanStep(
                    step_id=s.step_id,
                    role=s.role,
                    title=s.title,
                    description=s.description,
                    depends_on=s.depends_on,
                )
                for s in plan.steps
            ]
            return PlanMade(steps, plan.rationale)
        assert last_error is not None
        return PlanningFailed(str(last_error), last_error.error_class)

    async def _report_usage(self, machine: TaskMachine, call: int, usage: Usage) -> None:
        """The planner's own call on the task's log, before the plan it leads to, so
        every fold counts it before granting any step (docs/adr/0011)."""
        if not usage.calls and not usage.input_tokens:
            return
        body = UsageReported(request_id="", what="plan", usage=usage)
        assert machine.submitted is not None
        envelope = Envelope.new(
            body,
            sender=self.ctx.sender,
            task_id=machine.task_id,
            message_id=derived_id(machine.task_id, f"plan-usage/{call}"),
            causes=[machine.submitted.message_id],
            trace=machine.submitted.trace,
        )
        await self.ctx.publish(TASK_EVENTS, envelope)
        machine.step(Logged(envelope, replayed=True))  # counted now, not when it is read back

    async def sweep_deadlines(self, interval_s: float = 1.0) -> None:
        """Tell the tasks of the partitions held now the time, when they need it."""
        while True:
            await asyncio.sleep(interval_s)
            await self.sweep_once()

    async def sweep_once(self) -> int:
        """One sweep: step every task whose wake (deadline, hedge, escalation timeout)
        has come, and every task once when the quarantine changed (the electorate
        did). Returns how many machines it stepped.

        Tasks of a partition not held now or still being rebuilt wait aside until
        it is held and rebuilt (`Wakes.hold`); tasks that left memory (finished, at
        a snapshot) drop out. The workers' lane maps need no sweep of their own:
        they matter only when a hedge fires, and a hedge is a wake."""
        if self.consumer is None:
            return 0
        owned = {
            tp.partition for tp in self.consumer.assigned if tp.topic.endswith(TASK_EVENTS.name)
        }
        now = utc_now()
        quarantined = self.quarantine.active(now)
        if quarantined != self.swept_quarantine:
            self.swept_quarantine = quarantined
            for task_id, partition in self.partition_of.items():
                if partition in owned:  # the others are stepped when rebuilt
                    self.wakes.soon(task_id)
        self.wakes.release(owned - self.rebuilding)
        stepped = 0
        for n, (task_id, at) in enumerate(self.wakes.due(now)):
            if n % SWEEP_YIELD_EVERY == SWEEP_YIELD_EVERY - 1:
                # Let the loop run: a sweep over 5,000 tasks in one go (no await
                # in it yields unless a machine publishes) kept the consumer's
                # heartbeats out for longer than the session (bench/scale.py).
                await asyncio.sleep(0)
            machine = self.tasks.get(task_id)
            lock = self.locks.get(task_id)
            if machine is None or lock is None:
                self.wakes.drop(task_id)  # finished, left memory at a snapshot
                continue
            held_in = self.partition_of.get(task_id)
            if held_in is None:
                continue  # not from the log (cannot happen: handle and rebuild set it)
            if held_in not in owned or held_in in self.rebuilding:
                self.wakes.hold(task_id, held_in, at)  # not ours, or partial for now
                continue
            if lock.locked():
                # Busy with an input (a plan call, say): its run sets the next wake;
                # until then it stays due, for the next sweep.
                self.wakes.earliest(task_id, at)
                continue
            async with lock:
                machine.step(Quarantined(quarantined))
                machine.step(self.lanes.owners())
                machine.step(Tick(now))
                await self.run(machine)
            stepped += 1
        return stepped

    # ------------------------------------------------------------ rebuild

    async def rebuild(self, partitions: list[TopicPartition]) -> None:
        """Fold the assigned partitions of the task log: snapshot + tail, or all of it."""
        own = [tp for tp in partitions if tp.topic == self.ctx.topic(TASK_EVENTS)]
        if not own:
            return
        self.rebuilding |= {tp.partition for tp in own}
        self.rebuild_ended.clear()
        try:
            starts = await self._fold_partitions(own)
        finally:
            rebuilt = {tp.partition for tp in own}
            self.rebuilding -= rebuilt
            if not self.rebuilding:
                self.rebuild_ended.set()
            # Every task folded here may have something to do with no record to come
            # (a deadline passed while no one held its partition): due at once.
            for task_id, partition in self.partition_of.items():
                if partition in rebuilt:
                    self.wakes.soon(task_id)
        log.info(
            "rebuilt task state",
            extra={
                "partitions": len(own),
                "events": self.rebuilt_events,
                "from_snapshot": {tp.partition: at for tp, at in starts.items()},
            },
        )

    async def _fold_partitions(self, own: list[TopicPartition]) -> dict[TopicPartition, int]:
        folded = 0
        if self.snapshots is not None:
            for tp in own:
                self.snapshots.rebuilding(tp.partition)
        # Bounded (by the poll interval): a partition that cannot be read to its end
        # must not hold the assignment's records forever.
        bound_s = self.ctx.kafka.max_poll_interval_ms / 1000
        async with PartitionReader(self.ctx.kafka.bootstrap, client_id=self.ctx.instance) as reader:
            ends = await reader.end_offsets(own)
            starts = await self.snapshots.restore(own, ends) if self.snapshots else {}
            await reader.assign(own, starts or "beginning")
            async for batch in reader.batches_to_end(bound_s):
                for r in batch:
                    try:
                        envelope = self.codec.decode(r.value)
                    except DecodeError:
                        continue  # the consumer dead-letters it when it gets there
                    ctx = self.ctx
                    if not ctx.authorship.check(
                        r.topic, envelope, ctx.role, ctx.instance, report=False
                    ):
                        continue  # forged: the live consumer reported it when it came
                    if envelope.task_id is not None:
                        # The clocks of what this planner (or its predecessor) logged:
                        # without them a restarted planner would stamp its next records
                        # with clocks that do not dominate their causes.
                        if self.ctx.service.causal_clocks:
                            self.ctx.stamper.observe(r.topic, envelope)
                        machine = self.machine(envelope.task_id)
                        machine.step(Logged(envelope, replayed=True))
                        if self.snapshots is not None:
                            self.snapshots.keep(
                                envelope.task_id, r.offset, r.value, envelope.message_id
                            )
                        self.partition_of[envelope.task_id] = r.partition
                        folded += 1
        if self.snapshots is not None:
            for tp in own:
                self.snapshots.rebuilt(tp.partition, ends[tp])
        self.rebuilt_events = folded
        return starts


async def setup_planner(ctx: ServiceContext) -> None:
    planner = Planner(ctx, select_backend())
    snapshot_settings = PlannerSnapshotSettings()
    if snapshot_settings.snapshots:
        planner.snapshots = PlannerSnapshots(planner, snapshot_settings)
        ctx.background.append(_logged("planner snapshots", planner.snapshots.run))
    planner.consumer = ctx.consume(
        "synod.planner", [TASKS, TASK_EVENTS, ESCALATIONS], planner.handle
    )
    planner.consumer.on_assigned = planner.rebuild
    ctx.background.append(_logged("deadline sweep", planner.sweep_deadlines))
    ctx.background.append(planner.close_outbox_on_stop)
    bootstrap, topic = ctx.kafka.bootstrap, quarantine.topic_of(ctx.kafka.topic_prefix)
    ctx.background.append(lambda: quarantine.follow(bootstrap, topic, planner.quarantine))
    prefix = ctx.kafka.topic_prefix
    ctx.background.append(
        _logged("heartbeat lanes", lambda: planner.lanes.follow(bootstrap, prefix))
    )


def _logged(
    name: str, job: Callable[[], Coroutine[Any, Any, None]]
) -> Callable[[], Coroutine[Any, Any, None]]:
    """`job`, with its end logged: a background task that dies is otherwise silent."""

    async def run() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background job failed", extra={"job": name})
            raise

    return run
