"""How fast a plan can possibly run on n workers, computed offline.

These numbers are what a run is judged against:

- `parallel_fraction` p = 1 - L/W, with W the total work and L the longest
  weighted chain. With unit durations this is (steps not on the longest
  chain) / (all steps), which is how the paper names its projects: 20 steps
  with a longest chain of 2, 10 and 16 give p = 0.9, 0.5 and 0.2.
- `amdahl_bound` 1/((1-p) + p/n): Amdahl's speedup limit for that p. It
  assumes the serial part cannot overlap the parallel part, which a DAG
  does not require, so it is pessimistic.
- `graph_bound` max(L, W/n): no schedule on n workers finishes sooner. Its
  speedup W / max(L, W/n) = min(n, 1/(1-p)) is never below Amdahl's.
- `clairvoyant_makespan`: critical-path-first list scheduling with the
  durations known in advance. Achievable, so an upper bound on the optimum;
  Graham's theorem puts it at most W/n + (1-1/n)·L.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass

from synod.core.plan.dag import Plan


def parallel_fraction(plan: Plan, durations: Mapping[str, float] | None = None) -> float:
    work = plan.total_work(durations)
    if work == 0:
        return 0.0
    return 1.0 - plan.longest_chain(durations).length / work


def amdahl_bound(p: float, n: int) -> float:
    """Amdahl's speedup limit on n workers for parallel fraction p."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"parallel fraction must be in [0, 1], got {p}")
    _check_workers(n)
    return 1.0 / ((1.0 - p) + p / n)


def graph_bound(plan: Plan, n: int, durations: Mapping[str, float] | None = None) -> float:
    """The dependency-graph lower bound on the makespan: max(longest chain, work / n)."""
    _check_workers(n)
    return max(plan.longest_chain(durations).length, plan.total_work(durations) / n)


@dataclass(frozen=True)
class ScheduledStep:
    step_id: str
    worker: int
    start: float
    finish: float


def list_schedule(
    plan: Plan, n: int, durations: Mapping[str, float] | None = None
) -> tuple[ScheduledStep, ...]:
    """Critical-path-first list scheduling on n identical workers, durations known.

    At every instant: first retire every step finishing then, then give free
    workers (lowest number first) to ready steps in `critical_path_rank` order.
    No worker idles while a step is ready.
    """
    _check_workers(n)
    w = plan.weights(durations)
    rank = plan.critical_path_rank(durations)
    waiting = {sid: len(plan.depends_on(sid)) for sid in plan.ids}
    ready = [rank[sid] for sid, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    by_rank = {r: sid for sid, r in rank.items()}
    free = list(range(n))
    running: list[tuple[float, int, int]] = []  # (finish, rank, worker)
    out: list[ScheduledStep] = []
    now = 0.0
    while ready or running:
        while ready and free:
            sid = by_rank[heapq.heappop(ready)]
            worker = heapq.heappop(free)
            finish = now + w[sid]
            heapq.heappush(running, (finish, rank[sid], worker))
            out.append(ScheduledStep(sid, worker, now, finish))
        now = running[0][0]
        while running and running[0][0] == now:
            _, r, worker = heapq.heappop(running)
            heapq.heappush(free, worker)
            for c in plan.dependents(by_rank[r]):
                waiting[c] -= 1
                if waiting[c] == 0:
                    heapq.heappush(ready, rank[c])
    return tuple(out)


def clairvoyant_makespan(plan: Plan, n: int, durations: Mapping[str, float] | None = None) -> float:
    return max(s.finish for s in list_schedule(plan, n, durations))


@dataclass(frozen=True)
class Bounds:
    """Every offline number for one plan on n workers (durations in seconds or units)."""

    n: int
    total_work: float
    longest_chain: float
    parallel_fraction: float
    amdahl_speedup: float
    graph_bound: float
    graph_speedup: float
    clairvoyant_makespan: float

    @property
    def clairvoyant_speedup(self) -> float:
        return _ratio(self.total_work, self.clairvoyant_makespan)


def bounds(plan: Plan, n: int, durations: Mapping[str, float] | None = None) -> Bounds:
    p = parallel_fraction(plan, durations)
    g = graph_bound(plan, n, durations)
    work = plan.total_work(durations)
    return Bounds(
        n=n,
        total_work=work,
        longest_chain=plan.longest_chain(durations).length,
        parallel_fraction=p,
        amdahl_speedup=amdahl_bound(p, n),
        graph_bound=g,
        graph_speedup=_ratio(work, g),
        clairvoyant_makespan=clairvoyant_makespan(plan, n, durations),
    )


def _ratio(work: float, makespan: float) -> float:
    # A plan of zero-length steps has no meaningful speedup; 1 keeps tables finite.
    return work / makespan if makespan > 0 else 1.0


def _check_workers(n: int) -> None:
    if n < 1:
        raise ValueError(f"need at least one worker, got {n}")
