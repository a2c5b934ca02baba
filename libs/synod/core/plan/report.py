"""Per-run team metrics: what a run achieved against what the plan allows.

`RunReport` is the record `synod team run --json` and bench/teams.py print,
one per run. It is built from plain numbers (`build_report`), so the Kafka
services and the simulator fill it the same way:

- `speedup`: the one-agent makespan (same mode, same step durations) over
  this makespan.
- `amdahl_speedup`: 1/((1-p) + p/n) for the project's p, with every step
  counting 1, which is how the paper names its projects (p09 is p = 0.9).
- `graph_bound_s`: max(longest chain, total work / n) in the measured step
  durations; no schedule on n agents can beat it.
- `clairvoyant_makespan_s`: critical-path-first list scheduling with those
  durations known in advance (offline; what a scheduler that knew the future
  achieves).
- `straggler_gap_s`: per wave, the slowest step's time minus the wave's mean
  step time, averaged over waves. A wave is n steps in the order they
  started (the first n, the next n, ...): the work the team did side by
  side, so the gap is how long the fastest agents of a wave could wait on
  its slowest. Step time is the winning attempt's, so hedging shrinks it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from synod.core.plan.bounds import (
    amdahl_bound,
    clairvoyant_makespan,
    graph_bound,
    parallel_fraction,
)
from synod.core.plan.dag import Plan


@dataclass(frozen=True)
class RunReport:
    project: str
    mode: str
    n: int
    seed: int
    makespan_s: float
    one_agent_makespan_s: float
    speedup: float
    parallel_fraction: float
    amdahl_speedup: float
    graph_bound_s: float
    graph_speedup: float
    clairvoyant_makespan_s: float
    total_work_s: float
    messages: int
    tokens: int
    concurrent_writes: int
    lost_writes: int
    blocked_claims: int
    concurrent_claims: int
    hedges: int
    cancels: int
    straggler_gap_s: float
    tests_passed: bool | None = None  # None: the project carries no tests
    messages_by_kind: dict[str, int] = field(default_factory=dict)
    waits: int = 0  # central: times an agent was free but its own next step was not ready
    # The shared workspace (Kafka runs): conflicts merged, stale writes fenced off.
    conflicts_resolved: int = 0
    writes_fenced: int = 0

    @property
    def vs_clairvoyant(self) -> float:
        """makespan / clairvoyant makespan: 1.0 is as good as knowing every duration."""
        return self.makespan_s / self.clairvoyant_makespan_s if self.clairvoyant_makespan_s else 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def straggler_gap(n: int, step_times: Mapping[str, float], starts: Mapping[str, float]) -> float:
    """Mean over waves of (slowest - mean step time); waves are n steps in start order."""
    if n < 1:
        raise ValueError(f"need at least one agent, got {n}")
    order = sorted(step_times, key=lambda s: (starts[s], s))
    gaps = []
    for i in range(0, len(order), n):
        times = [step_times[s] for s in order[i : i + n]]
        gaps.append(max(times) - math.fsum(times) / len(times))
    return math.fsum(gaps) / len(gaps) if gaps else 0.0


def build_report(
    plan: Plan,
    *,
    mode: str,
    n: int,
    seed: int,
    makespan_s: float,
    one_agent_makespan_s: float,
    durations: Mapping[str, float],
    step_times: Mapping[str, float],
    step_starts: Mapping[str, float],
    messages_by_kind: Mapping[str, int],
    tokens: int,
    concurrent_writes: int,
    lost_writes: int,
    blocked_claims: int = 0,
    concurrent_claims: int = 0,
    hedges: int = 0,
    cancels: int = 0,
    tests_passed: bool | None = None,
    project: str = "",
    waits: int = 0,
) -> RunReport:
    """A report from a run's measurements.

    `durations` are the measured step durations the bounds use; `step_times`
    and `step_starts` are the winning attempt's time and start per step.
    """
    if makespan_s <= 0 or one_agent_makespan_s <= 0:
        raise ValueError(
            f"makespans must be > 0, got {makespan_s} and one agent {one_agent_makespan_s}"
        )
    p = parallel_fraction(plan)
    work = plan.total_work(durations)
    g = graph_bound(plan, n, durations)
    return RunReport(
        project=project or plan.name,
        mode=mode,
        n=n,
        seed=seed,
        makespan_s=makespan_s,
        one_agent_makespan_s=one_agent_makespan_s,
        speedup=one_agent_makespan_s / makespan_s,
        parallel_fraction=p,
        amdahl_speedup=amdahl_bound(p, n),
        graph_bound_s=g,
        graph_speedup=work / g if g > 0 else 1.0,
        clairvoyant_makespan_s=clairvoyant_makespan(plan, n, durations),
        total_work_s=work,
        messages=sum(messages_by_kind.values()),
        tokens=tokens,
        concurrent_writes=concurrent_writes,
        lost_writes=lost_writes,
        blocked_claims=blocked_claims,
        concurrent_claims=concurrent_claims,
        hedges=hedges,
        cancels=cancels,
        straggler_gap_s=straggler_gap(n, step_times, step_starts),
        tests_passed=tests_passed,
        messages_by_kind=dict(messages_by_kind),
        waits=waits,
    )
