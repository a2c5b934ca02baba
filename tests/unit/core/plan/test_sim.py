"""The scheduler in virtual time: against the clairvoyant schedule and with stragglers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.plan import (
    Cancel,
    Hedge,
    Plan,
    SchedulerConfig,
    clairvoyant_makespan,
    graph_bound,
    load_project,
    run_simulation,
    simulate,
)

PAPER = Path("/work/shared/paper/tasks")
PROJECTS = sorted(PAPER.glob("*/p*.json"))


@st.composite
def weighted_dags(draw: st.DrawFn) -> tuple[Plan, dict[str, float]]:
    n = draw(st.integers(1, 16))
    steps: list[dict[str, Any]] = []
    for i in range(n):
        deps = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        steps.append({"step_id": f"s{i}", "depends_on": [f"s{j}" for j in sorted(deps)]})
    # Few distinct durations, so finish times tie often, as with the paper's unit steps.
    durations = {s["step_id"]: draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5])) for s in steps}
    return Plan.from_steps(draw(st.permutations(steps))), durations


@settings(max_examples=200, deadline=None, derandomize=True)
@given(weighted_dags(), st.integers(1, 5))
def test_critical_path_first_with_known_durations_is_the_clairvoyant_schedule(
    case: tuple[Plan, dict[str, float]], n: int
) -> None:
    p, d = case
    assert simulate(p, n, d, "critical_path") == clairvoyant_makespan(p, n, d)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(weighted_dags(), st.integers(1, 5), st.sampled_from(["synod", "critical_path", "fifo"]))
def test_no_policy_beats_the_graph_bound_or_exceeds_the_workers(
    case: tuple[Plan, dict[str, float]], n: int, policy: str
) -> None:
    p, d = case
    result = run_simulation(p, n, d, policy, known_durations=False)  # type: ignore[arg-type]
    assert result.makespan >= graph_bound(p, n, d) - 1e-9
    assert result.max_live <= n
    if policy != "synod":  # without hedges every run is a list schedule: Graham's bound
        chain = p.longest_chain(d).length
        assert result.makespan <= p.total_work(d) / n + (1 - 1 / n) * chain + 1e-9


@pytest.mark.parametrize("path", PROJECTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_paper_projects_reach_the_clairvoyant_makespan(path: Path) -> None:
    p = load_project(path)
    unit = {sid: 1.0 for sid in p.ids}
    for n in range(1, 6):
        assert simulate(p, n, unit, "synod") == clairvoyant_makespan(p, n)


def test_plan_order_starts_a_chain_late_and_critical_path_does_not() -> None:
    independent: list[dict[str, Any]] = [{"step_id": f"i{k}"} for k in range(4)]
    chain: list[dict[str, Any]] = [{"step_id": "c0"}, {"step_id": "c1", "depends_on": ["c0"]}]
    p = Plan.from_steps([*independent, *chain, {"step_id": "c2", "depends_on": ["c1"]}])
    unit = {sid: 1.0 for sid in p.ids}
    assert simulate(p, 2, unit, "fifo") == 5.0
    assert simulate(p, 2, unit, "critical_path", known_durations=False) == 4.0


def test_hedging_rescues_a_straggler() -> None:
    p = Plan.from_steps([{"step_id": f"s{i}"} for i in range(10)])
    unit = {sid: 1.0 for sid in p.ids}
    stuck = {("s9", 1): 100.0}  # the first attempt of s9 hangs; a second one would not
    assert simulate(p, 4, unit, "critical_path", attempt_durations=stuck) == 102.0
    result = run_simulation(p, 4, unit, "synod", attempt_durations=stuck)
    # s9 starts at 2; 8 steps done by then, p95 = 1, so it is hedged at 3 and done at 4.
    assert result.makespan == 4.0
    assert [(t, o) for t, o in result.log if isinstance(o, Hedge | Cancel)] == [
        (3.0, Hedge("s9", 2, straggler=1)),
        (4.0, Cancel("s9", 1, "w1")),
    ]


def test_a_custom_config_keeps_its_settings_but_uses_the_workers_given() -> None:
    p = Plan.from_steps([{"step_id": f"s{i}"} for i in range(6)])
    unit = {sid: 1.0 for sid in p.ids}
    config = SchedulerConfig(max_concurrency=99, hedge=False)
    result = run_simulation(p, 2, unit, config)
    assert (result.makespan, result.max_live) == (3.0, 2)
