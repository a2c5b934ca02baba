"""Synod mode is the planner's task core: its schedule in virtual time, its hedges.

These are the checks the old `Scheduler` had, now on `SynodEngine`, which
runs `synod.core.task.TaskMachine` (the service's core) in virtual time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.plan import Plan, clairvoyant_makespan, graph_bound, load_project
from synod.core.plan.modes import (
    Action,
    AttemptFailed,
    AttemptFinished,
    AttemptStarted,
    Cancel,
    ClaimAttempted,
    EngineConfig,
    Hedge,
    Run,
    TeamDone,
    TeamEvent,
    TeamFailed,
    Tick,
)
from synod.core.task import TaskConfig
from synod.core.task.hedging import nearest_rank
from synod.core.teamsim import SynodEngine, make_engine, task_config
from synod.errors import ConfigError

PAPER = Path("/work/shared/paper/tasks")
PROJECTS = sorted(PAPER.glob("*/p*.json"))
NO_HEDGE = EngineConfig(hedge=False)


def make_plan(*steps: tuple[str, list[str]]) -> Plan:
    return Plan.from_steps({"step_id": s, "depends_on": d} for s, d in steps)


@dataclass(frozen=True)
class Result:
    makespan: float
    log: tuple[tuple[float, Action], ...]
    max_live: int


def run(
    plan: Plan,
    n: int,
    durations: dict[str, float],
    config: EngineConfig | None = None,
    *,
    estimates: dict[str, float] | None = None,
    pinned: dict[tuple[str, int], float] | None = None,
) -> Result:
    """The engine on n interchangeable workers; everything at one instant is one batch."""
    engine = SynodEngine(plan, n, config, estimates)
    free = list(range(n))
    running: dict[tuple[str, int], tuple[float, int]] = {}
    log: list[tuple[float, Action]] = []
    now, max_live = 0.0, 0
    batch: list[TeamEvent] = [Tick(now)]
    for _ in range(10_000):
        out = engine.handle(batch)
        log.extend((now, a) for a in out)
        batch = []
        for a in out:
            if isinstance(a, Run | Hedge):
                assert free, f"the engine ran {a} with no worker free"
                worker = heapq.heappop(free)
                took = (pinned or {}).get((a.step_id, a.attempt), durations[a.step_id])
                running[(a.step_id, a.attempt)] = (now + took, worker)
                batch.append(AttemptStarted(a.step_id, a.attempt, f"w{worker}", now))
            elif isinstance(a, Cancel) and (a.step_id, a.attempt) in running:
                heapq.heappush(free, running.pop((a.step_id, a.attempt))[1])
            elif isinstance(a, TeamDone):
                return Result(a.makespan, tuple(log), max_live)
            elif isinstance(a, TeamFailed):
                raise AssertionError(f"the plan failed: {a}")
        max_live = max(max_live, len(running))
        if batch:
            continue
        wake = engine.next_deadline()
        times = [f for f, _ in running.values()] + ([wake] if wake is not None else [])
        assert times, "stalled: nothing running and nothing to wake for"
        now = min(times)
        ending = sorted(
            (k for k, (f, _) in running.items() if f == now),
            key=lambda k: (plan.position(k[0]), k[1]),
        )
        for key in ending:
            heapq.heappush(free, running.pop(key)[1])
        batch = [AttemptFinished(s, a, "w", now) for s, a in ending]
        batch.append(Tick(now))
    raise AssertionError("no end in 10000 rounds")


@st.composite
def weighted_dags(draw: st.DrawFn) -> tuple[Plan, dict[str, float]]:
    n = draw(st.integers(1, 12))
    steps: list[dict[str, Any]] = []
    for i in range(n):
        deps = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        steps.append({"step_id": f"s{i}", "depends_on": [f"s{j}" for j in sorted(deps)]})
    # Few distinct durations, so finish times tie often, as with the paper's unit steps.
    durations = {s["step_id"]: draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5])) for s in steps}
    return Plan.from_steps(draw(st.permutations(steps))), durations


@settings(max_examples=60, deadline=None, derandomize=True)
@given(weighted_dags(), st.integers(1, 5))
def test_critical_path_first_with_known_durations_is_the_clairvoyant_schedule(
    case: tuple[Plan, dict[str, float]], n: int
) -> None:
    p, d = case
    assert run(p, n, d, NO_HEDGE, estimates=d).makespan == clairvoyant_makespan(p, n, d)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(weighted_dags(), st.integers(1, 5), st.booleans())
def test_no_run_beats_the_graph_bound_or_exceeds_the_team(
    case: tuple[Plan, dict[str, float]], n: int, hedge: bool
) -> None:
    p, d = case
    result = run(p, n, d, EngineConfig(hedge=hedge))
    assert result.makespan >= graph_bound(p, n, d) - 1e-9
    assert result.max_live <= n
    if not hedge:  # without hedges every run is a list schedule: Graham's bound
        chain = p.longest_chain(d).length
        assert result.makespan <= p.total_work(d) / n + (1 - 1 / n) * chain + 1e-9


@pytest.mark.skipif(not PROJECTS, reason=f"no paper projects under {PAPER}")
@pytest.mark.parametrize("path", PROJECTS[:3], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_paper_projects_reach_the_clairvoyant_makespan(path: Path) -> None:
    p = load_project(path)
    unit = {sid: 1.0 for sid in p.ids}
    for n in range(1, 6):
        assert run(p, n, unit).makespan == clairvoyant_makespan(p, n)


def test_critical_path_first_starts_the_chain_at_once() -> None:
    independent: list[dict[str, Any]] = [{"step_id": f"i{k}"} for k in range(4)]
    chain: list[dict[str, Any]] = [{"step_id": "c0"}, {"step_id": "c1", "depends_on": ["c0"]}]
    p = Plan.from_steps([*independent, *chain, {"step_id": "c2", "depends_on": ["c1"]}])
    unit = {sid: 1.0 for sid in p.ids}
    result = run(p, 2, unit, NO_HEDGE)
    assert result.makespan == 4.0  # plan order (the chain last) would take 5
    assert result.log[0] == (0.0, Run("c0", 1, None))


def test_estimates_change_the_critical_path() -> None:
    p = make_plan(("a", []), ("b", ["a"]), ("x", []))
    assert run(p, 1, {s: 1.0 for s in p.ids}, NO_HEDGE).log[0][1] == Run("a", 1, None)
    weighed = {"a": 1.0, "b": 1.0, "x": 5.0}
    assert run(p, 1, weighed, NO_HEDGE, estimates=weighed).log[0][1] == Run("x", 1, None)


def test_hedging_rescues_a_straggler() -> None:
    p = make_plan(*[(f"s{i}", []) for i in range(10)])
    unit = {sid: 1.0 for sid in p.ids}
    stuck = {("s9", 1): 100.0}  # the first attempt of s9 hangs; a second one would not
    assert run(p, 4, unit, NO_HEDGE, pinned=stuck).makespan == 102.0
    result = run(p, 4, unit, pinned=stuck)
    # s9 starts at 2; 8 steps done by then, p95 = 1, so it is hedged at 3 and done at 4.
    assert result.makespan == 4.0
    assert [(t, a) for t, a in result.log if isinstance(a, Hedge | Cancel)] == [
        (3.0, Hedge("s9", 2, straggler=1)),
        (4.0, Cancel("s9", 1, "w1")),
    ]


def test_no_hedge_before_enough_samples_and_ready_steps_come_first() -> None:
    p = make_plan(*[(f"s{i}", []) for i in range(4)])
    e = SynodEngine(p, 3, EngineConfig(hedge_min_samples=2))
    assert e.handle([Tick(0)]) == (Run("s0", 1, None), Run("s1", 1, None), Run("s2", 1, None))
    e.handle([AttemptStarted(f"s{i}", 1, f"w{i}", 0.0) for i in range(3)])
    out = e.handle([AttemptFinished("s0", 1, "w0", 1.0)])
    assert out == (Run("s3", 1, None),)  # one sample: no hedge; the free worker takes s3
    out = e.handle([AttemptStarted("s3", 1, "w0", 1.0), AttemptFinished("s1", 1, "w1", 1.0)])
    # Two samples, p95 = 1.0: s2 has run that long and a worker is free.
    assert out == (Hedge("s2", 2, straggler=1),)


def test_transient_failures_are_retried_then_fail_the_task() -> None:
    p = make_plan(("a", []))
    e = SynodEngine(p, 1, EngineConfig(max_attempts=2))
    assert e.handle([Tick(0)]) == (Run("a", 1, None),)
    assert e.handle([AttemptFailed("a", 1, "w", 1.0)]) == (Run("a", 2, None),)
    [failed] = e.handle([AttemptFailed("a", 2, "w", 2.0, reason="boom")])
    assert isinstance(failed, TeamFailed)
    assert failed.step_id == "a"
    assert "2 times" in failed.reason
    assert (e.stats.runs, e.stats.retries) == (2, 1)


@pytest.mark.parametrize("error_class", ["permanent", "budget"])
def test_permanent_and_budget_failures_are_not_retried(error_class: Any) -> None:
    e = SynodEngine(make_plan(("a", [])), 1)
    e.handle([Tick(0)])
    [failed] = e.handle([AttemptFailed("a", 1, "w", 1.0, error_class=error_class)])
    assert isinstance(failed, TeamFailed)
    assert error_class in failed.reason


def test_an_unacceptable_result_counts_as_a_failed_attempt() -> None:
    e = SynodEngine(make_plan(("a", [])), 1)
    e.handle([Tick(0)])
    assert e.handle([AttemptFinished("a", 1, "w", 1.0, ok=False)]) == (Run("a", 2, None),)


def test_the_p95_is_a_nearest_rank_quantile() -> None:
    # 20 samples 1..20: ceil(0.95 * 20) = 19th smallest (the index int(0.95 * 20) is the 20th).
    assert nearest_rank([float(i) for i in range(20, 0, -1)], 0.95) == 19.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 5.0], 0.95) == 5.0
    assert nearest_rank([float(i) for i in range(1, 9)], 0.25) == 2.0


def tail_engine(config: EngineConfig) -> SynodEngine:
    """s1..s5 take 0.5..2.5 and end together at 2.5; then 'late' and 'late2' run, the last two."""
    plan = make_plan(*[(f"s{i}", []) for i in range(1, 6)], ("late", []), ("late2", []))
    e = SynodEngine(plan, 5, config)
    assert e.handle([Tick(0)]) == tuple(Run(f"s{i}", 1, None) for i in range(1, 6))
    e.handle([AttemptStarted(f"s{i}", 1, f"w{i}", 0.0) for i in range(1, 6)])
    out = e.handle([AttemptFinished(f"s{i}", 1, f"w{i}", 0.5 * i) for i in range(1, 6)])
    assert out == (Run("late", 1, None), Run("late2", 1, None))
    return e


def test_without_the_tail_rule_the_p95_holds_in_the_tail() -> None:
    e = tail_engine(EngineConfig(tail_hedge_quantile=None))
    assert e.next_deadline() == 5.0  # started at 2.5, the p95 of 0.5..2.5 is 2.5
    assert e.handle([Tick(4.9)]) == ()


def test_in_the_tail_the_lower_quantile_fires() -> None:
    e = tail_engine(EngineConfig(tail_hedge_quantile=0.25))
    assert e.next_deadline() == 3.5  # started at 2.5, p25 of 0.5..2.5 is 1.0 (nearest rank)
    assert e.handle([Tick(3.4)]) == ()
    # Three free agents: one copy of each straggler, critical path (plan order) first.
    assert e.handle([Tick(3.5)]) == (
        Hedge("late", 2, straggler=1),
        Hedge("late2", 2, straggler=1),
    )
    assert e.handle([Tick(9.0)]) == ()  # once per step


def test_the_tail_rule_waits_while_a_step_is_still_waiting() -> None:
    plan = make_plan(*[(f"s{i}", []) for i in range(1, 6)], ("a", []), ("b", ["a"]))
    e = SynodEngine(plan, 5, EngineConfig(hedge_min_samples=4, tail_hedge_quantile=0.25))
    assert e.handle([Tick(0)]) == (Run("a", 1, None), *(Run(f"s{i}", 1, None) for i in range(1, 5)))
    e.handle([AttemptStarted("a", 1, "w0", 0.0)])
    out = e.handle([AttemptFinished(f"s{i}", 1, f"w{i}", 0.5 * i) for i in range(1, 5)])
    assert out == (Run("s5", 1, None), Hedge("a", 2, straggler=1))  # a ran the p95, 2.0
    assert e.next_deadline() == 4.0  # s5 was requested at 2.0: the p95 rules, not the p25
    assert e.handle([Tick(3.0)]) == ()


def test_the_engine_runs_the_task_core_with_the_same_settings() -> None:
    assert task_config(EngineConfig()) == TaskConfig()  # the bench's defaults are the service's


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"hedge_quantile": 0.0},
        {"hedge_quantile": 1.5},
        {"hedge_min_samples": 0},
        {"tail_hedge_quantile": 0.0},
        {"max_hedges": 0},
    ],
)
def test_bad_configs_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        EngineConfig(**bad)
    task = {("max_step_attempts" if k == "max_attempts" else k): v for k, v in bad.items()}
    with pytest.raises(ConfigError):
        TaskConfig(**task)


# a -> b -> c is a chain; x and y are free.
CHAIN = make_plan(("a", []), ("b", ["a"]), ("c", ["b"]), ("x", []), ("y", []))


def test_synod_dispatches_only_ready_steps_critical_path_first() -> None:
    e = SynodEngine(CHAIN, ["p", "q"])
    out = e.handle([Tick(0)])
    assert out == (Run("a", 1, None), Run("x", 1, None))
    assert all(isinstance(o, Run) and o.step_id not in ("b", "c") for o in out)


def test_synod_hedges_a_straggler_and_cancels_the_loser_output_once() -> None:
    p = make_plan(*[(f"s{i}", []) for i in range(6)])
    e = SynodEngine(p, ["p", "q"])
    e.handle([Tick(0)])  # s0, s1 out
    now = 0.0
    # s0 finishes quickly five times over (five samples); s1 straggles.
    e.handle([AttemptStarted("s0", 1, "p", 0.0), AttemptStarted("s1", 1, "q", 0.0)])
    for i in (0, 2, 3, 4, 5):
        now += 1.0
        out = e.handle([AttemptFinished(f"s{i}", 1, "p", now)])
    # Everything but s1 is done; a free agent and s1 past the p95 (1.0): hedge.
    assert Hedge("s1", 2, 1) in out
    out = e.handle([AttemptFinished("s1", 2, "p", now + 0.5)])
    assert Cancel("s1", 1, "q") in out
    assert isinstance(out[-1], TeamDone)
    # The loser reporting anyway changes nothing: no second completion, no action.
    assert e.handle([AttemptFinished("s1", 1, "q", now + 0.6)]) == ()
    assert e.stats.hedges == 1
    assert e.stats.cancels == 1


def test_make_engine_names_the_modes_it_knows() -> None:
    assert isinstance(make_engine("synod", CHAIN, ["p"]), SynodEngine)
    with pytest.raises(ConfigError, match="unknown mode"):
        make_engine("chaos", CHAIN, ["p"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="takes no claims"):
        SynodEngine(CHAIN, ["p"]).handle([ClaimAttempted("p", "a", 0.0)])
