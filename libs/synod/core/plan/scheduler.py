"""The run of one plan as a state machine: events in, commands out.

The caller (the planner service, or `simulate`) feeds what happened and
carries out what comes back:

    in:  Tick(now)                                  time passes; the first one starts the run
         StepDispatched(step_id, attempt, worker, now)  a worker took an attempt
         StepFinished(step_id, attempt, now, ok)     an attempt produced a result
         StepFailed(step_id, attempt, now, error_class, reason)
    out: Dispatch(step_id, attempt)                 send a step to the coder pool
         Hedge(step_id, attempt, straggler)         send a straggling step again
         Cancel(step_id, attempt, worker)           stop an attempt whose result is not needed
         PlanDone(now, makespan) / PlanFailed(step_id, reason, now)
         Ignored(event, reason)                     an event that changed nothing, and why

Rules, in the order they apply within one `handle_batch` call:

1. Exactly once: the first successful result of a step completes it; any
   later result for it (the hedge loser, a redelivered message) is `Ignored`
   with reason "already_done", and the other live attempts are cancelled.
2. A failed attempt is retried (new attempt number) when it was transient,
   no other attempt of the step is still running, and fewer than
   `max_attempts` attempts of the step have failed; otherwise the plan fails.
3. Ready steps are dispatched, highest critical-path rank first, while fewer
   than `max_concurrency` attempts are live.
4. Spare capacity only then goes to hedges: a step whose newest attempt has
   run for at least the `hedge_quantile` (p95) of the durations of finished
   steps, once `hedge_min_samples` steps have finished, is dispatched again.
   In the plan's tail (every unfinished step is running, so an idle worker
   has nothing else it could do) `tail_hedge_quantile`, when set, replaces
   the p95 if it is lower: a hedge there costs tokens but no other step's time.

Time only comes from events and never runs backwards (a late event is taken
to happen at the latest time seen). A batch is a set of events that happened
together: decisions are made once, after all of them, which is what lets
a simulation reproduce the offline list schedule exactly.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from synod.core.plan.dag import Plan
from synod.errors import ConfigError, ErrorClass

# ---------------------------------------------------------------- events in


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class StepDispatched:
    step_id: str
    attempt: int
    worker: str
    now: float


@dataclass(frozen=True)
class StepFinished:
    """An attempt ended with a result; `ok=False` means the result was not acceptable."""

    step_id: str
    attempt: int
    now: float
    ok: bool = True


@dataclass(frozen=True)
class StepFailed:
    step_id: str
    attempt: int
    now: float
    error_class: ErrorClass = "transient"
    reason: str = ""


Event = Tick | StepDispatched | StepFinished | StepFailed

# ---------------------------------------------------------------- commands out


@dataclass(frozen=True)
class Dispatch:
    step_id: str
    attempt: int


@dataclass(frozen=True)
class Hedge:
    """Dispatch `attempt` of a step whose attempt `straggler` is still running."""

    step_id: str
    attempt: int
    straggler: int


@dataclass(frozen=True)
class Cancel:
    step_id: str
    attempt: int
    worker: str | None


@dataclass(frozen=True)
class PlanDone:
    now: float
    makespan: float


@dataclass(frozen=True)
class PlanFailed:
    step_id: str
    reason: str
    now: float


IgnoreReason = Literal["unknown_step", "already_done", "not_running", "duplicate", "plan_over"]


@dataclass(frozen=True)
class Ignored:
    event: Event
    reason: IgnoreReason


Output = Dispatch | Hedge | Cancel | PlanDone | PlanFailed | Ignored

StepStatus = Literal["waiting", "ready", "running", "done", "failed"]


@dataclass(frozen=True)
class SchedulerConfig:
    """How a plan run is scheduled. `order="plan_order"` without hedging is the FIFO baseline."""

    max_concurrency: int = 1
    order: Literal["critical_path", "plan_order"] = "critical_path"
    hedge: bool = True
    hedge_quantile: float = 0.95
    hedge_min_samples: int = 5
    max_hedges: int = 1
    max_attempts: int = 3
    tail_hedge_quantile: float | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if not 0.0 < self.hedge_quantile <= 1.0:
            raise ConfigError(f"hedge_quantile must be in (0, 1], got {self.hedge_quantile}")
        if self.hedge_min_samples < 1:
            raise ConfigError(f"hedge_min_samples must be >= 1, got {self.hedge_min_samples}")
        tail = self.tail_hedge_quantile
        if tail is not None and not 0.0 < tail <= 1.0:
            raise ConfigError(f"tail_hedge_quantile must be in (0, 1], got {tail}")
        if self.max_hedges < 0:
            raise ConfigError(f"max_hedges must be >= 0, got {self.max_hedges}")
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")


@dataclass(frozen=True)
class SchedulerStats:
    dispatched: int
    hedged: int
    cancelled: int
    retried: int
    duplicates: int  # results for a step that was already done
    ignored: int  # all ignored events, duplicates included


@dataclass
class _Attempt:
    attempt: int
    issued_at: float
    started_at: float | None = None
    worker: str | None = None

    @property
    def start(self) -> float:
        # Until a worker reports, the attempt counts as running since it was issued.
        return self.started_at if self.started_at is not None else self.issued_at


@dataclass
class _Step:
    waiting_for: int
    status: StepStatus
    live: dict[int, _Attempt] = field(default_factory=dict)
    attempts_issued: int = 0
    failures: int = 0
    hedges: int = 0


class Scheduler:
    """Runs one plan: feed events to `handle` / `handle_batch`, carry out the outputs.

    `estimates` are the expected step durations used to rank steps by critical
    path; without them every step counts as 1.
    """

    def __init__(
        self,
        plan: Plan,
        config: SchedulerConfig,
        estimates: Mapping[str, float] | None = None,
    ) -> None:
        self.plan = plan
        self.config = config
        if config.order == "critical_path":
            self._rank = plan.critical_path_rank(estimates)
        else:
            self._rank = {sid: plan.position(sid) for sid in plan.ids}
        self._steps = {
            sid: _Step(len(plan.depends_on(sid)), "waiting" if plan.depends_on(sid) else "ready")
            for sid in plan.ids
        }
        self._ready = [self._rank[sid] for sid, s in self._steps.items() if s.status == "ready"]
        heapq.heapify(self._ready)
        self._by_rank = {r: sid for sid, r in self._rank.items()}
        self._live = 0
        self._done = 0
        self._durations: list[float] = []
        self._now: float | None = None
        self._started_at = 0.0
        self._outcome: PlanDone | PlanFailed | None = None
        self._dispatched = self._hedged = self._cancelled = self._retried = 0
        self._duplicates = self._ignored = 0

    # ------------------------------------------------------------ input

    def handle(self, event: Event) -> tuple[Output, ...]:
        return self.handle_batch((event,))

    def handle_batch(self, events: Iterable[Event]) -> tuple[Output, ...]:
        out: list[Output] = []
        seen_any = False
        for event in events:
            seen_any = True
            self._advance(event.now)
            if self._outcome is not None:
                self._ignore(out, event, "plan_over")
            elif isinstance(event, StepDispatched):
                self._on_dispatched(event, out)
            elif isinstance(event, StepFinished):
                if event.ok:
                    self._on_success(event, out)
                else:
                    self._on_failure(event, "transient", "result not acceptable", out)
            elif isinstance(event, StepFailed):
                self._on_failure(event, event.error_class, event.reason, out)
        if seen_any and self._outcome is None:
            self._decide(out)
        return tuple(out)

    def _advance(self, now: float) -> None:
        if self._now is None:
            self._started_at = now
            self._now = now
        else:
            self._now = max(self._now, now)

    @property
    def now(self) -> float:
        return self._now if self._now is not None else 0.0

    def _attempt_of(
        self, event: StepDispatched | StepFinished | StepFailed, out: list[Output]
    ) -> tuple[_Step, _Attempt] | None:
        step = self._steps.get(event.step_id)
        if step is None:
            self._ignore(out, event, "unknown_step")
            return None
        if step.status == "done":
            if not isinstance(event, StepDispatched):
                self._duplicates += 1
            self._ignore(out, event, "already_done")
            return None
        attempt = step.live.get(event.attempt)
        if attempt is None:
            self._ignore(out, event, "not_running")
            return None
        return step, attempt

    def _on_dispatched(self, event: StepDispatched, out: list[Output]) -> None:
        found = self._attempt_of(event, out)
        if found is None:
            return
        _, attempt = found
        if attempt.worker is not None:
            self._ignore(out, event, "duplicate")
            return
        attempt.worker = event.worker
        attempt.started_at = self.now

    def _on_success(self, event: StepFinished, out: list[Output]) -> None:
        found = self._attempt_of(event, out)
        if found is None:
            return
        step, winner = found
        self._durations.append(self.now - winner.start)
        del step.live[winner.attempt]
        self._live -= 1
        for loser in sorted(step.live.values(), key=lambda a: a.attempt):
            out.append(Cancel(event.step_id, loser.attempt, loser.worker))
            self._cancelled += 1
        self._live -= len(step.live)
        step.live.clear()
        step.status = "done"
        self._done += 1
        for child in self.plan.dependents(event.step_id):
            c = self._steps[child]
            c.waiting_for -= 1
            if c.waiting_for == 0:
                c.status = "ready"
                heapq.heappush(self._ready, self._rank[child])

    def _on_failure(
        self,
        event: StepFinished | StepFailed,
        error_class: ErrorClass,
        reason: str,
        out: list[Output],
    ) -> None:
        found = self._attempt_of(event, out)
        if found is None:
            return
        step, attempt = found
        del step.live[attempt.attempt]
        self._live -= 1
        step.failures += 1
        if step.live:
            return  # another attempt of the step is still running; it decides
        if error_class == "transient" and step.failures < self.config.max_attempts:
            step.status = "ready"
            heapq.heappush(self._ready, self._rank[event.step_id])
            self._retried += 1
            return
        step.status = "failed"
        why = reason or "no reason given"
        if error_class == "transient":
            why = f"{step.failures} attempts failed, last: {why}"
        self._fail(event.step_id, f"{error_class}: {why}", out)

    def _fail(self, step_id: str, reason: str, out: list[Output]) -> None:
        for sid in self.plan.ids:
            step = self._steps[sid]
            for a in sorted(step.live.values(), key=lambda a: a.attempt):
                out.append(Cancel(sid, a.attempt, a.worker))
                self._cancelled += 1
            step.live.clear()
        self._live = 0
        self._outcome = PlanFailed(step_id, reason, self.now)
        out.append(self._outcome)

    def _ignore(self, out: list[Output], event: Event, reason: IgnoreReason) -> None:
        self._ignored += 1
        out.append(Ignored(event, reason))

    # ------------------------------------------------------------ decisions

    def _decide(self, out: list[Output]) -> None:
        if self._done == len(self._steps):
            self._outcome = PlanDone(self.now, self.now - self._started_at)
            out.append(self._outcome)
            return
        while self._ready and self._live < self.config.max_concurrency:
            sid = self._by_rank[heapq.heappop(self._ready)]
            out.append(Dispatch(sid, self._issue(sid)))
            self._dispatched += 1
        while self._live < self.config.max_concurrency:
            due = self._overdue()
            if not due:
                break
            sid, straggler = due[0]
            out.append(Hedge(sid, self._issue(sid), straggler.attempt))
            self._steps[sid].hedges += 1
            self._hedged += 1

    def _issue(self, step_id: str) -> int:
        step = self._steps[step_id]
        step.attempts_issued += 1
        step.status = "running"
        step.live[step.attempts_issued] = _Attempt(step.attempts_issued, self.now)
        self._live += 1
        return step.attempts_issued

    def _hedge_candidates(self) -> list[tuple[str, _Attempt]]:
        """Running steps that may still be hedged, with their newest attempt, by rank."""
        if not self.config.hedge:
            return []
        tail = self.config.tail_hedge_quantile is not None and self.in_tail()
        found = []
        for sid, step in self._steps.items():
            if step.live and step.hedges < self.config.max_hedges:
                # In the tail copies go out together, so the oldest attempt is the reference.
                ref = min(step.live) if tail else max(step.live)
                found.append((sid, step.live[ref]))
        found.sort(key=lambda x: self._rank[x[0]])
        return found

    def _overdue(self) -> list[tuple[str, _Attempt]]:
        limit = self._threshold_now()
        if limit is None:
            return []
        return [(s, a) for s, a in self._hedge_candidates() if self.now - a.start >= limit]

    # ------------------------------------------------------------ queries

    def hedge_threshold(self) -> float | None:
        """The running time past which a step is hedged; None until enough steps finished."""
        n = len(self._durations)
        if not self.config.hedge or n < self.config.hedge_min_samples:
            return None
        return self._quantile(self.config.hedge_quantile)

    def _quantile(self, q: float) -> float:
        # Nearest-rank quantile: always one of the measured durations, no interpolation.
        k = max(1, math.ceil(q * len(self._durations)))
        return sorted(self._durations)[k - 1]

    def in_tail(self) -> bool:
        """Every unfinished step has a live attempt: nothing waits or is ready."""
        return all(s.status in ("done", "running") for s in self._steps.values())

    def _threshold_now(self) -> float | None:
        limit = self.hedge_threshold()
        tail = self.config.tail_hedge_quantile
        if limit is None or tail is None or not self.in_tail():
            return limit
        return min(limit, self._quantile(tail))

    def next_deadline(self) -> float | None:
        """The earliest future time a hedge could fire: when to send the next Tick.

        Hedges already overdue but waiting for capacity are not included; they go
        out with the event that frees a slot.
        """
        limit = self._threshold_now()
        if limit is None or self._outcome is not None:
            return None
        times = [a.start + limit for _, a in self._hedge_candidates()]
        future = [t for t in times if t > self.now]
        return min(future) if future else None

    def status(self, step_id: str) -> StepStatus:
        return self._steps[step_id].status

    @property
    def outcome(self) -> PlanDone | PlanFailed | None:
        return self._outcome

    @property
    def finished(self) -> bool:
        return self._outcome is not None

    def live_attempts(self) -> tuple[tuple[str, int], ...]:
        return tuple((sid, a) for sid in self.plan.ids for a in sorted(self._steps[sid].live))

    def finished_durations(self) -> tuple[float, ...]:
        return tuple(self._durations)

    @property
    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            dispatched=self._dispatched,
            hedged=self._hedged,
            cancelled=self._cancelled,
            retried=self._retried,
            duplicates=self._duplicates,
            ignored=self._ignored,
        )
