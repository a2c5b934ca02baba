"""Synod mode in the simulator: the planner's own `TaskMachine`, in virtual time.

There is one synod-mode scheduler, the task core the planner service runs
(`synod.core.task`). `SynodEngine` drives it in the team vocabulary of
`synod.core.plan.modes`, so the simulator and bench/teams.py measure what the
service does: the engine plays the task's log (it folds back every record the
machine publishes, at once) and the coders' reports, and turns the machine's
step requests, hedges and cancels into `Run`, `Hedge` and `Cancel`.

Attempt numbers: the log counts attempts from 0, the team vocabulary from 1
(attempt 1 is a step's first), so attempt k here is attempt k - 1 in the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from synod.core.plan.dag import Plan
from synod.core.plan.modes import (
    MODES,
    Action,
    AttemptFailed,
    AttemptFinished,
    AttemptStarted,
    Cancel,
    CentralEngine,
    ClaimEngine,
    EngineConfig,
    EngineStats,
    Hedge,
    Mode,
    Run,
    TeamDone,
    TeamEvent,
    TeamFailed,
    Tick,
)
from synod.core.task import Logged, Phase, Publish, TaskConfig, TaskMachine
from synod.core.task import Tick as TaskTick
from synod.errors import ConfigError
from synod.wire import (
    Body,
    Envelope,
    PlanStep,
    Sender,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskFailed,
    TaskSubmitted,
)
from synod.wire.messages import StepCancelled

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # virtual time 0
TASK_ID = "sim"
PLANNER = Sender(role="planner", instance="sim")
CODER = Sender(role="coder", instance="sim")
_MAX_ROUNDS = 100  # ready/fold rounds per input; a round that publishes nothing ends it


def task_config(config: EngineConfig) -> TaskConfig:
    """The task core's settings for the engine's: the same hedge rule, the same attempts."""
    return replace(
        TaskConfig(),
        max_step_attempts=config.max_attempts,
        hedge=config.hedge,
        hedge_quantile=config.hedge_quantile,
        hedge_min_samples=config.hedge_min_samples,
        tail_hedge_quantile=config.tail_hedge_quantile,
        max_hedges=config.max_hedges,
    )


class SynodEngine:
    """The planner's task core as a team engine: ready steps, critical path first, hedging."""

    mode: Mode = "synod"

    def __init__(
        self,
        plan: Plan,
        agents: Sequence[str] | int,
        config: EngineConfig | None = None,
        estimates: Mapping[str, float] | None = None,
        consistency: Any = "strong",
    ) -> None:
        n = agents if isinstance(agents, int) else len(agents)
        if n < 1 or (not isinstance(agents, int) and len(set(agents)) != n):
            raise ConfigError("a team needs at least one agent, each named once")
        self.plan = plan
        self.n = n
        self.config = config or EngineConfig()
        self.consistency = consistency
        self.machine = TaskMachine(TASK_ID, task_config(self.config), estimates)
        self._start: float | None = None
        self._now = 0.0
        self._began: dict[tuple[str, int], float] = {}  # log attempt -> when it started
        self._agent: dict[tuple[str, int], str] = {}
        self._outcome: TeamDone | TeamFailed | None = None
        self._stats = EngineStats()
        self._wake: datetime | None = None  # the last ready()'s wake-up

    def _at(self, now: float) -> datetime:
        return EPOCH + timedelta(seconds=now)

    def _log(self, body: Body, sender: Sender, attempt: int = 0, message_id: str = "") -> None:
        fields: dict[str, Any] = {"attempt": attempt, "created_at": self._at(self._now)}
        if message_id:
            fields["message_id"] = message_id
        envelope = Envelope.new(body, sender=sender, task_id=TASK_ID, **fields)
        self.machine.step(Logged(envelope, replayed=True))

    def _submit(self) -> None:
        steps = [
            PlanStep(
                step_id=s.step_id,
                role="coder",
                depends_on=list(s.depends_on),
                files=list(s.files),
                priority=s.priority,
            )
            for s in self.plan
        ]
        task = TaskSubmitted(
            goal=self.plan.name or "simulated plan",
            plan=steps,
            labels={"team.agents": str(self.n)},
            consistency=self.consistency,
            deadline_s=86_400,
        )
        self._log(task, PLANNER)

    # ------------------------------------------------------------ in

    def handle(self, events: Iterable[TeamEvent]) -> tuple[Action, ...]:
        seen = False
        for e in events:
            seen = True
            self._now = max(self._now, e.now)
            if self._start is None:
                self._start = e.now
                self._submit()
            if self._outcome is not None:
                continue
            if isinstance(e, AttemptStarted):
                self._began[(e.step_id, e.attempt - 1)] = e.now
                self._agent[(e.step_id, e.attempt - 1)] = e.agent
            elif isinstance(e, AttemptFinished | AttemptFailed):
                self._report(e)
            elif not isinstance(e, Tick):
                raise ConfigError(f"synod mode takes no claims (got one from {e.agent})")
        if not seen or self._outcome is not None:
            return ()
        self.machine.step(TaskTick(self._at(self._now)))
        return tuple(self._carry_out())

    def _report(self, e: AttemptFinished | AttemptFailed) -> None:
        attempt = e.attempt - 1
        self._agent.pop((e.step_id, attempt), None)
        if isinstance(e, AttemptFinished) and e.ok:
            if e.step_id in self.machine.completed:
                self._count(duplicates=1)
            took = e.now - self._began.get((e.step_id, attempt), e.now)
            self._log(StepCompleted(step_id=e.step_id, duration_s=took), CODER, attempt)
        elif isinstance(e, AttemptFailed):
            failed = StepFailed(step_id=e.step_id, error_class=e.error_class, error=e.reason)
            self._log(failed, CODER, attempt)
        else:
            failed = StepFailed(
                step_id=e.step_id, error_class="transient", error="result not acceptable"
            )
            self._log(failed, CODER, attempt)

    # ------------------------------------------------------------ out

    def _carry_out(self) -> list[Action]:
        out: list[Action] = []
        for _ in range(_MAX_ROUNDS):
            ready = self.machine.ready()
            published = [a for a in ready.actions if isinstance(a, Publish)]
            for action in published:
                out.extend(self._translate(action))
                self._log(action.body, PLANNER, action.attempt, action.message_id)
            self.machine.advance(ready)
            if self.machine.phase in (Phase.VOTING, Phase.MERGING, Phase.DONE):
                return [*out, self._end()]
            if not published:
                self._wake = ready.wake_at  # nothing changed since it was said
                return out
        raise RuntimeError(f"the task core kept publishing for {_MAX_ROUNDS} rounds")

    def _translate(self, action: Publish) -> list[Action]:
        body = action.body
        if isinstance(body, StepRequested):
            self._began.setdefault((body.step_id, action.attempt), self._now)
            if body.prompt_variant == "hedge":
                self._count(hedges=1)
                straggler = self.machine.requested[body.step_id] + 1
                return [Hedge(body.step_id, action.attempt + 1, straggler)]
            self._count(runs=1, retries=1 if action.attempt else 0)
            return [Run(body.step_id, action.attempt + 1, None)]
        if isinstance(body, StepCancelled):
            self._count(cancels=len(body.attempts))
            return [
                Cancel(body.step_id, a + 1, self._agent.pop((body.step_id, a), None))
                for a in body.attempts
            ]
        return []

    def _end(self) -> TeamDone | TeamFailed:
        start = self._start or 0.0
        outcome = self.machine.outcome
        if isinstance(outcome, TaskFailed) or self.machine.phase is Phase.DONE:
            step = outcome.failed_step if isinstance(outcome, TaskFailed) else None
            reason = outcome.reason if isinstance(outcome, TaskFailed) else "ended"
            self._outcome = TeamFailed(step or "", reason, self._now)
        else:
            self._outcome = TeamDone(self._now, self._now - start)
        return self._outcome

    def _count(self, **inc: int) -> None:
        s = self._stats
        self._stats = replace(s, **{k: getattr(s, k) + v for k, v in inc.items()})

    # ------------------------------------------------------------ queries

    def next_deadline(self) -> float | None:
        """When a hedge could fire next (the task's own deadline is not a sim event)."""
        if self._outcome is not None:
            return None
        wake = self._wake
        submitted = self.machine.submitted
        if wake is None or submitted is None:
            return None
        if wake >= submitted.created_at + timedelta(seconds=submitted.body.deadline_s):
            return None
        return (wake - EPOCH).total_seconds()

    @property
    def outcome(self) -> TeamDone | TeamFailed | None:
        return self._outcome

    @property
    def stats(self) -> EngineStats:
        return self._stats

    def is_done(self, step_id: str) -> bool:
        return step_id in self.machine.completed


def make_engine(
    mode: Mode,
    plan: Plan,
    agents: Sequence[str],
    config: EngineConfig | None = None,
    estimates: Mapping[str, float] | None = None,
    consistency: Any = "strong",
) -> CentralEngine | ClaimEngine | SynodEngine:
    """The engine for `mode`. `estimates` rank steps in synod mode only (the others ignore time)."""
    if mode == "central":
        return CentralEngine(plan, agents, config)
    if mode == "claim":
        return ClaimEngine(plan, agents, config)
    if mode == "synod":
        return SynodEngine(plan, agents, config, estimates, consistency)
    raise ConfigError(f"unknown mode '{mode}'; expected one of {', '.join(MODES)}")
