"""The simulator finds deliberate bugs planted in the real code (synod.core.bugs).

For each bug the test names the first seed of the CI sweep's configuration
that catches it, and shows both halves: every seed before it passes with the
bug planted (so that seed really is the first to find it, within the sweep's
budget), the seed fails with the bug, by the named invariant, and passes
without it. A change to what the simulator draws moves these seeds; find the
new ones with `synod sim --seeds 500 --tasks 2 --bug NAME` (the first failing).
"""

from __future__ import annotations

import pytest

from synod.sim import FAULTS, FaultPlan, SimConfig
from synod.sim.sweep import run_one

PLAN = FaultPlan(faults=frozenset(FAULTS))
TASKS = 2

# bug -> (the first seed that finds it, what shows it)
FOUND_BY = {
    "commit_early": (144, "stuck"),
    "quorum_minus_one": (0, "decision_without_quorum"),
    "outcome_before_writes": (25, "lost_write"),
}


def _symptoms(result: object) -> set[str]:
    from synod.sim import SimResult

    assert isinstance(result, SimResult)
    found = set(result.report.counts())
    if result.stuck:
        found.add("stuck")
    return found


@pytest.mark.parametrize("bug", sorted(FOUND_BY))
def test_the_named_seed_is_the_first_to_find_the_bug(bug: str) -> None:
    seed, symptom = FOUND_BY[bug]
    for earlier in range(seed):
        result = run_one(SimConfig(seed=earlier, tasks=TASKS, plan=PLAN), [bug])
        assert result.ok, f"seed {earlier} finds {bug} before {seed}: {_symptoms(result)}"
    caught = run_one(SimConfig(seed=seed, tasks=TASKS, plan=PLAN), [bug])
    assert not caught.ok
    assert symptom in _symptoms(caught), _symptoms(caught)
    clean = run_one(SimConfig(seed=seed, tasks=TASKS, plan=PLAN))
    assert clean.ok, clean.to_json()
