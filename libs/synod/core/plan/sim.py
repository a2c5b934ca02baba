"""A tiny discrete-event simulator that drives the real `Scheduler` in virtual time.

Workers are interchangeable; an attempt of step s takes `durations[s]` unless
`attempt_durations[(s, attempt)]` says otherwise (a straggler, or a fast
hedge). Every event that happens at one instant is handed to the scheduler as
one batch. With known durations, no hedging and critical-path order this
reproduces `list_schedule` exactly, which is what the tests check.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from synod.core.plan.dag import Plan
from synod.core.plan.scheduler import (
    Cancel,
    Dispatch,
    Event,
    Hedge,
    Output,
    PlanDone,
    PlanFailed,
    Scheduler,
    SchedulerConfig,
    StepDispatched,
    StepFinished,
    Tick,
)

Policy = Literal["synod", "critical_path", "fifo"]

POLICIES: dict[Policy, SchedulerConfig] = {
    "synod": SchedulerConfig(order="critical_path", hedge=True),
    "critical_path": SchedulerConfig(order="critical_path", hedge=False),
    "fifo": SchedulerConfig(order="plan_order", hedge=False),
}


@dataclass(frozen=True)
class SimulationResult:
    makespan: float
    log: tuple[tuple[float, Output], ...]  # every scheduler output with its time
    max_live: int  # most attempts running at once


def simulate(
    plan: Plan,
    n_workers: int,
    durations: Mapping[str, float],
    policy: Policy | SchedulerConfig = "synod",
    *,
    attempt_durations: Mapping[tuple[str, int], float] | None = None,
    known_durations: bool = True,
) -> float:
    """The makespan of `plan` on `n_workers` under `policy`; see `run_simulation`."""
    return run_simulation(
        plan,
        n_workers,
        durations,
        policy,
        attempt_durations=attempt_durations,
        known_durations=known_durations,
    ).makespan


def run_simulation(
    plan: Plan,
    n_workers: int,
    durations: Mapping[str, float],
    policy: Policy | SchedulerConfig = "synod",
    *,
    attempt_durations: Mapping[tuple[str, int], float] | None = None,
    known_durations: bool = True,
) -> SimulationResult:
    """Run the plan to completion in virtual time starting at 0.

    `known_durations` gives the scheduler the true durations as its estimates
    (the clairvoyant setting); otherwise it ranks with every step counting 1,
    as a planner must before anything has run.
    """
    base = POLICIES[policy] if isinstance(policy, str) else policy
    config = replace(base, max_concurrency=n_workers)
    weights = plan.weights(durations)
    extra = attempt_durations or {}
    scheduler = Scheduler(plan, config, weights if known_durations else None)

    free = list(range(n_workers))
    running: dict[tuple[str, int], tuple[float, int]] = {}  # -> (finish, worker)
    log: list[tuple[float, Output]] = []
    max_live = 0
    now = 0.0
    batch: list[Event] = [Tick(now)]
    while True:
        outputs = scheduler.handle_batch(batch)
        log.extend((now, o) for o in outputs)
        batch = []
        for o in outputs:
            if isinstance(o, Dispatch | Hedge):
                if not free:
                    raise RuntimeError(f"scheduler exceeded {n_workers} workers with {o}")
                worker = heapq.heappop(free)
                length = extra.get((o.step_id, o.attempt), weights[o.step_id])
                running[(o.step_id, o.attempt)] = (now + length, worker)
                batch.append(StepDispatched(o.step_id, o.attempt, f"w{worker}", now))
            elif isinstance(o, Cancel) and (o.step_id, o.attempt) in running:
                heapq.heappush(free, running.pop((o.step_id, o.attempt))[1])
            elif isinstance(o, PlanDone):
                return SimulationResult(o.makespan, tuple(log), max_live)
            elif isinstance(o, PlanFailed):
                raise RuntimeError(f"plan failed in simulation: {o}")
        max_live = max(max_live, len(running))
        if batch:
            continue  # the workers report at the same instant
        deadline = scheduler.next_deadline()
        times = [f for f, _ in running.values()] + ([deadline] if deadline is not None else [])
        if not times:
            raise RuntimeError("simulation stalled: nothing running and no deadline")
        now = min(times)
        ending = sorted(
            (k for k, (f, _) in running.items() if f == now),
            key=lambda k: (plan.position(k[0]), k[1]),
        )
        for key in ending:
            heapq.heappush(free, running.pop(key)[1])
        batch = [StepFinished(sid, attempt, now) for sid, attempt in ending]
        batch.append(Tick(now))
