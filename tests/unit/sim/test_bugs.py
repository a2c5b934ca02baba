"""The simulator finds deliberate bugs planted in the real code (synod.core.bugs).

For each bug the test names the first seed of the CI sweep's configuration
that catches it, and shows both halves: every seed before it passes with the
bug planted (so that seed really is the first to find it, within the sweep's
budget), the seed fails with the bug, by the named invariant, and passes
without it. A change to what the simulator draws moves these seeds; find the
new ones with `synod sim --seeds 500 --tasks 2 --bug NAME [--outbox read-back]`
(the first failing). The planner runs the `ack` outbox, as the service does by
default, but for the bug only the `read-back` outbox exposes.
"""

from __future__ import annotations

import pytest

from synod.core.task.carry import OutboxMode
from synod.sim import FAULTS, FaultPlan, SimConfig
from synod.sim.sweep import run_one

PLAN = FaultPlan(faults=frozenset(FAULTS))
TASKS = 2

# bug -> (the first seed that finds it, what shows it, the planner's outbox)
FOUND_BY: dict[str, tuple[int, str, OutboxMode]] = {
    # Under `ack` the first seed to find it is 525 (stuck), checked here with
    # `read-back` to keep the test short and that mode covered: the ack planner folds
    # its log to the end on assignment (an input committed early is still in its
    # state) and sends a record's copies with its write, so only a worker's or juror's
    # lost input is left, which the deadlines mostly heal. With `read-back` a forward
    # rode on the read-back that was committed before it was handled.
    "commit_early": (144, "stuck", "read-back"),
    "quorum_minus_one": (0, "decision_without_quorum", "ack"),
    "outcome_before_writes": (0, "lost_write", "ack"),
    # The ack window: a planner crashes between logging an outcome and its copy to
    # synod.results, and the planner that reads it back does not send it on.
    "ack_trusts_the_log": (9, "stuck", "ack"),
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
    seed, symptom, outbox = FOUND_BY[bug]
    for earlier in range(seed):
        result = run_one(SimConfig(seed=earlier, tasks=TASKS, plan=PLAN, outbox=outbox), [bug])
        assert result.ok, f"seed {earlier} finds {bug} before {seed}: {_symptoms(result)}"
    caught = run_one(SimConfig(seed=seed, tasks=TASKS, plan=PLAN, outbox=outbox), [bug])
    assert not caught.ok
    assert symptom in _symptoms(caught), _symptoms(caught)
    clean = run_one(SimConfig(seed=seed, tasks=TASKS, plan=PLAN, outbox=outbox))
    assert clean.ok, clean.to_json()
