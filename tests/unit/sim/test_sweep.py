"""The CI seed sweep: 1,000 seeds with every fault switched on keep every promise.

It prints seeds per second and virtual seconds per wall second (no timing is
asserted); a failing seed's replay command is in the assertion message.
"""

from __future__ import annotations

from synod.sim import FAULTS, FaultPlan
from synod.sim.sweep import sweep

SEEDS = 1_000
TASKS = 2


def test_a_thousand_seeds_under_every_fault_keep_every_promise() -> None:
    done = sweep(0, SEEDS, TASKS, FaultPlan(faults=frozenset(FAULTS)))
    rates = done.rates()
    print(
        f"\nsim sweep: {done.seeds} seeds in {done.wall_s:.1f} s, {rates['seeds_per_s']} seeds/s, "
        f"{rates['virtual_s_per_wall_s']} virtual s per wall s; CPU {done.cpu_s:.1f} s: "
        f"{rates['seeds_per_cpu_s']} seeds/s, {rates['virtual_s_per_cpu_s']} virtual s/s; "
        f"{done.records} records"
    )
    assert done.seeds == SEEDS
    assert done.ok, [(r.seed, cmd, r.report.counts(), r.stuck) for r, cmd in done.failed[:5]]
