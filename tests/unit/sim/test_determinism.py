"""One seed decides everything: two runs of a seed write byte-identical logs."""

from __future__ import annotations

from synod.sim import FAULTS, FaultPlan, SimConfig, simulate


def test_two_runs_of_one_seed_have_the_same_hash_and_other_seeds_differ() -> None:
    plan = FaultPlan(faults=frozenset(FAULTS))
    first = simulate(SimConfig(seed=7, tasks=3, plan=plan))
    again = simulate(SimConfig(seed=7, tasks=3, plan=plan))
    other = simulate(SimConfig(seed=8, tasks=3, plan=plan))
    assert first.digest == again.digest
    assert first.to_json() == again.to_json()
    assert other.digest != first.digest
    assert first.ok, first.to_json()


def test_a_fault_free_run_completes_every_task_and_checks_clean() -> None:
    result = simulate(SimConfig(seed=1, tasks=4))
    assert result.ok, result.to_json()
    assert result.completed == 4
    assert result.failed == 0
    # The oracle really looked: decisions with their quorum, cause links, writes.
    assert result.report.decisions >= 4
    assert result.report.causes > 4 * 5
    assert result.report.writes >= 1
