"""Offline bounds: p, Amdahl, the graph bound and the clairvoyant list schedule."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.plan import (
    Plan,
    amdahl_bound,
    bounds,
    clairvoyant_makespan,
    graph_bound,
    list_schedule,
    load_project,
    parallel_fraction,
)

PAPER = Path("/work/shared/paper/tasks")
SUITES = ["amdahl_dataanalysis", "amdahl_mathutilities20", "amdahl_svgutils"]
# From the paper's README: longest dependency chain and steps with dependencies.
EXPECTED = {"p09.json": (0.9, 2, 1), "p05.json": (0.5, 10, 9), "p02.json": (0.2, 16, 15)}
# The README's Amdahl row for n = 2..5, rounded to two places as printed there.
README_AMDAHL = {
    0.9: [1.82, 2.50, 3.08, 3.57],
    0.5: [1.33, 1.50, 1.60, 1.67],
    0.2: [1.11, 1.15, 1.18, 1.19],
}
CASES = [(suite, name) for suite in SUITES for name in EXPECTED]


@pytest.mark.parametrize(("suite", "name"), CASES)
def test_p_of_each_paper_project_matches_its_name(suite: str, name: str) -> None:
    p = load_project(PAPER / suite / name)
    want_p, want_chain, want_with_deps = EXPECTED[name]
    assert len(p) == 20
    assert sum(1 for s in p if s.depends_on) == want_with_deps
    assert p.longest_chain().length == want_chain
    assert parallel_fraction(p) == pytest.approx(want_p)
    got = [round(amdahl_bound(parallel_fraction(p), n), 2) for n in range(2, 6)]
    assert got == README_AMDAHL[want_p]


@pytest.mark.parametrize(("suite", "name"), CASES)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_paper_projects_graph_bound_and_clairvoyant(suite: str, name: str, n: int) -> None:
    p = load_project(PAPER / suite / name)
    chain = EXPECTED[name][1]
    assert graph_bound(p, n) == max(chain, 20 / n)
    # Unit steps: the list schedule reaches the bound rounded up to whole steps.
    assert clairvoyant_makespan(p, n) == max(chain, -(-20 // n))


def test_bounds_bundle() -> None:
    p = load_project(PAPER / "amdahl_mathutilities20" / "p05.json")
    b = bounds(p, 2)
    assert (b.total_work, b.longest_chain, b.parallel_fraction) == (20, 10, 0.5)
    assert b.amdahl_speedup == pytest.approx(4 / 3)
    assert (b.graph_bound, b.graph_speedup, b.clairvoyant_makespan) == (10, 2, 10)
    assert b.clairvoyant_speedup == 2


def test_amdahl_edges() -> None:
    assert amdahl_bound(0.0, 5) == 1.0
    assert amdahl_bound(1.0, 5) == 5.0
    assert amdahl_bound(0.5, 1) == 1.0
    with pytest.raises(ValueError, match="parallel fraction"):
        amdahl_bound(1.5, 2)
    with pytest.raises(ValueError, match="worker"):
        amdahl_bound(0.5, 0)


def test_weighted_p_uses_durations() -> None:
    p = Plan.from_steps([{"step_id": "a"}, {"step_id": "b", "depends_on": ["a"]}, {"step_id": "c"}])
    assert parallel_fraction(p) == pytest.approx(1 / 3)
    assert parallel_fraction(p, {"a": 1, "b": 1, "c": 8}) == pytest.approx(0.2)
    assert parallel_fraction(p, {"a": 0, "b": 0, "c": 0}) == 0.0


def test_critical_path_first_starts_the_chain_at_once() -> None:
    # Four short independent steps listed first, then a chain of three: a
    # plan-order scheduler starts the chain late; critical-path-first does not.
    independent: list[dict[str, Any]] = [{"step_id": f"i{k}"} for k in range(4)]
    chain: list[dict[str, Any]] = [{"step_id": "c0"}, {"step_id": "c1", "depends_on": ["c0"]}]
    p = Plan.from_steps([*independent, *chain, {"step_id": "c2", "depends_on": ["c1"]}])
    assert graph_bound(p, 2) == 3.5
    assert clairvoyant_makespan(p, 2) == 4.0
    first = [s.step_id for s in list_schedule(p, 2) if s.start == 0]
    assert first == ["c0", "i0"]


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
def test_list_schedule_is_valid_and_between_the_bounds(
    case: tuple[Plan, dict[str, float]], n: int
) -> None:
    p, d = case
    schedule = list_schedule(p, n, d)
    by_step = {s.step_id: s for s in schedule}
    assert sorted(by_step) == sorted(p.ids)
    for s in schedule:
        assert s.finish == s.start + d[s.step_id]
        assert all(by_step[dep].finish <= s.start for dep in p.depends_on(s.step_id))
        assert 0 <= s.worker < n
    for w in range(n):
        mine = sorted((s.start, s.finish) for s in schedule if s.worker == w and s.finish > s.start)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(mine))
    makespan = clairvoyant_makespan(p, n, d)
    work, chain = p.total_work(d), p.longest_chain(d).length
    eps = 1e-9
    assert graph_bound(p, n, d) <= makespan + eps
    # Graham (1966): any list schedule is within W/n + (1 - 1/n) L.
    assert makespan <= work / n + (1 - 1 / n) * chain + eps
    if n == 1:
        assert makespan == pytest.approx(work)
