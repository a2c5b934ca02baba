"""Many seeds, the replay command of a failing one, and shrinking its fault set.

A failing seed is shrunk by switching its faults off one at a time while it
still fails (the schedule of the others stays what the seed draws), and by
fewer tasks; what is left is the smallest replay this search finds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from synod.core.bugs import plant
from synod.core.task.carry import OutboxMode
from synod.sim.faults import FaultPlan
from synod.sim.world import SimConfig, SimResult, simulate
from synod.wire import Decision, Envelope, StepRequested


def replay_command(config: SimConfig, bugs: Iterable[str] = ()) -> str:
    faults = ",".join(sorted(config.plan.faults)) or "none"
    extra = "".join(f" --bug {b}" for b in sorted(bugs))
    if config.outbox != SimConfig.outbox:
        extra = f" --outbox {config.outbox}{extra}"
    return f"synod sim --seed {config.seed} --tasks {config.tasks} --faults {faults}{extra}"


def run_one(config: SimConfig, bugs: Iterable[str] = ()) -> SimResult:
    names = tuple(bugs)
    planted: AbstractContextManager[None] = plant(*names) if names else nullcontext()
    with planted:
        return simulate(config)


def shrink(config: SimConfig, bugs: Iterable[str] = ()) -> SimConfig:
    """A smaller config that still fails: fewer faults, then fewer tasks."""
    names = tuple(bugs)
    best = config
    for fault in sorted(config.plan.faults):
        trial = replace(best, plan=replace(best.plan, faults=best.plan.faults - {fault}))
        if not run_one(trial, names).ok:
            best = trial
    while best.tasks > 1:
        trial = replace(best, tasks=best.tasks - 1)
        if run_one(trial, names).ok:
            break
        best = trial
    return best


@dataclass
class Sweep:
    seeds: int = 0
    failed: list[tuple[SimResult, str]] = field(default_factory=list)  # result, replay
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time: the rate on a machine of its own
    virtual_s: float = 0.0
    records: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def rates(self) -> dict[str, float]:
        wall = max(self.wall_s, 1e-9)
        cpu = max(self.cpu_s, 1e-9)
        return {
            "seeds_per_s": round(self.seeds / wall, 2),
            "virtual_s_per_wall_s": round(self.virtual_s / wall, 1),
            "seeds_per_cpu_s": round(self.seeds / cpu, 2),
            "virtual_s_per_cpu_s": round(self.virtual_s / cpu, 1),
        }


def sweep(
    first: int,
    count: int,
    tasks: int,
    plan: FaultPlan,
    bugs: Iterable[str] = (),
    progress: Callable[[int, Sweep], None] | None = None,
    stop_on_failure: bool = False,
    outbox: OutboxMode = SimConfig.outbox,
) -> Sweep:
    names = tuple(bugs)
    out = Sweep()
    started, cpu = time.perf_counter(), time.process_time()
    for seed in range(first, first + count):
        config = SimConfig(seed=seed, tasks=tasks, plan=plan, outbox=outbox)
        result = run_one(config, names)
        out.seeds += 1
        out.virtual_s += result.virtual_s
        out.records += result.records
        if not result.ok:
            out.failed.append((result, replay_command(config, names)))
        out.wall_s = time.perf_counter() - started
        out.cpu_s = time.process_time() - cpu
        if progress is not None:
            progress(seed, out)
        if stop_on_failure and out.failed:
            break
    return out


def schedule(
    envelopes: Iterable[Envelope[Any]],
) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """A task log's schedule and decisions: (step, attempt) of each first StepRequested
    and (proposal, outcome) of each first Decision, in log order (copies dropped)."""
    seen: set[str] = set()
    steps: list[tuple[str, int]] = []
    decisions: list[tuple[str, str]] = []
    for env in envelopes:
        if env.message_id in seen:
            continue
        seen.add(env.message_id)
        if isinstance(env.body, StepRequested):
            steps.append((env.body.step_id, env.attempt))
        elif isinstance(env.body, Decision):
            decisions.append((env.body.proposal_id, env.body.outcome))
    return steps, decisions
