"""Every mode on random plans: each step once, never before its dependencies, nothing lost."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.plan import Plan
from synod.core.plan.modes import CentralEngine, EngineConfig
from synod.core.teamsim import SimConfig, simulate_team


@st.composite
def projects(draw: st.DrawFn) -> Plan:
    n = draw(st.integers(1, 12))
    steps: list[dict[str, Any]] = []
    for i in range(n):
        deps = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        steps.append(
            {
                "step_id": f"s{i}",
                "depends_on": [f"s{j}" for j in sorted(deps)],
                "files": [f"f{i}.py"],
                "priority": draw(st.integers(0, 3)),
            }
        )
    return Plan.from_steps(draw(st.permutations(steps)), name="random")


@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    projects(),
    st.integers(1, 4),
    st.sampled_from(["central", "claim", "synod"]),
    st.sampled_from(["strong", "eventual"]),
    st.integers(0, 10_000),
    st.sampled_from([0.0, 0.3]),
)
def test_a_team_runs_each_step_once_after_its_dependencies(
    plan: Plan, n: int, mode: Any, consistency: Any, seed: int, failure_rate: float
) -> None:
    # Failed attempts are retried; 12 attempts make a failed run (0.3^12) practically impossible.
    cfg = SimConfig(
        consistency=consistency, failure_rate=failure_rate, engine=EngineConfig(max_attempts=12)
    )
    run = simulate_team(plan, n, mode, seed, cfg)
    won = {t.step_id: t for t in run.steps}
    assert set(won) == set(plan.ids)
    for sid, t in won.items():
        for d in plan.depends_on(sid):
            assert won[d].finish <= t.start
    assert run.lost == ()
    assert run.outputs_per_step == {s: 1 for s in plan.ids}
    assert run.makespan >= max(t.finish for t in run.steps) - 1e-9
    assert run.stats.blocked_claims == 0 or mode == "claim"
    if failure_rate == 0.0:
        assert run.stats.retries == 0
    if mode == "central":
        # Each agent did its own list, in its order.
        lists = CentralEngine(plan, [f"agent-{i}" for i in range(n)]).assignment
        for agent, mine in lists.items():
            done = sorted((t for t in run.steps if t.agent == agent), key=lambda t: t.start)
            assert tuple(t.step_id for t in done) == mine
    if mode != "synod":
        assert run.stats.hedges == 0
