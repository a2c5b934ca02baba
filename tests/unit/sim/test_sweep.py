"""The CI seed sweep: 1,000 seeds with every fault switched on keep every promise.

Four chunks of 250 seeds, each a test of its own: on a loaded 2-core machine
the whole sweep's wall time came near the per-test timeout (276 of 300 s) while
it needs ~66 CPU s, and a chunk that fails names its own seeds. Each prints
seeds per second and virtual seconds per wall second (no timing is asserted);
a failing seed's replay command is in the assertion message.
"""

from __future__ import annotations

import pytest

from synod.sim import FAULTS, FaultPlan
from synod.sim.sweep import sweep

SEEDS = 1_000
CHUNKS = 4
TASKS = 2


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_a_thousand_seeds_under_every_fault_keep_every_promise(chunk: int) -> None:
    size = SEEDS // CHUNKS
    done = sweep(chunk * size, size, TASKS, FaultPlan(faults=frozenset(FAULTS)))
    rates = done.rates()
    print(
        f"\nsim sweep seeds {chunk * size}..{(chunk + 1) * size - 1}: {done.seeds} seeds in "
        f"{done.wall_s:.1f} s, {rates['seeds_per_s']} seeds/s, "
        f"{rates['virtual_s_per_wall_s']} virtual s per wall s; CPU {done.cpu_s:.1f} s: "
        f"{rates['seeds_per_cpu_s']} seeds/s, {rates['virtual_s_per_cpu_s']} virtual s/s; "
        f"{done.records} records"
    )
    assert done.seeds == size
    assert done.ok, [(r.seed, cmd, r.report.counts(), r.stuck) for r, cmd in done.failed[:5]]
