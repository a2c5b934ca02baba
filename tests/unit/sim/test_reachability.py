"""CAP choices in the simulation, as in the services (docs/cap.md): drawn tasks
choose `ap` or `cp`, and the supervisor's Reachability reports reach consensus,
whose ballot deadline markers name the voters it could reach.

Seeds of the CI sweep's configuration (2 tasks, every fault):
- 47, the first with a provisional decision: an `ap` task's answer ballot ends
  at its deadline with one vote in, rejected provisionally; after the heal the
  full electorate's tally is no quorum, so the Reconciled overturns it, and the
  task's revision is decided in full and completes;
- 269: a zone cut leaves reviewer-0 silent, the supervisor names it suspected,
  and the markers of that task's ballots name the two voters reached.
`synod check` (the sim's oracle) passes in both.
"""

from __future__ import annotations

from synod.sim import FAULTS, FaultPlan, SimConfig
from synod.sim.world import World
from synod.wire import BallotDeadline, Decision, Reachability, TaskCompleted
from synod.wire.messages import Reconciled

PLAN = FaultPlan(faults=frozenset(FAULTS))


def _run(seed: int, **options: object) -> tuple[World, object]:
    world = World(SimConfig(seed=seed, tasks=2, plan=PLAN, **options))  # type: ignore[arg-type]
    return world, world.run()


def test_an_ap_task_decides_provisionally_and_is_reconciled_after_the_heal() -> None:
    world, result = _run(47)
    assert result.ok, result.to_json()  # type: ignore[attr-defined]
    bodies = [r.envelope.body for r in world.records() if r.topic == "synod.task-events"]
    provisional = [b for b in bodies if isinstance(b, Decision) and b.provisional]
    assert len(provisional) == 1
    reconciled = [b for b in bodies if isinstance(b, Reconciled)]
    assert [(r.decision_id, r.confirmed) for r in reconciled] == [
        (provisional[0].decision_id, False)
    ]
    completed = [b for b in bodies if isinstance(b, TaskCompleted)]
    assert [c.partition_mode for c in completed] == ["ap"]
    assert not completed[0].provisional  # decided again in full, after the overturn


def test_the_supervisors_reports_name_the_voters_a_deadline_marker_reached() -> None:
    world, result = _run(269)
    assert result.ok, result.to_json()  # type: ignore[attr-defined]
    logs = world.records()
    reports = [r.envelope.body for r in logs if isinstance(r.envelope.body, Reachability)]
    assert any("reviewer-0" in b.suspected for b in reports)
    reached = {
        tuple(m.reachable)
        for r in logs
        if isinstance(m := r.envelope.body, BallotDeadline) and m.reachable is not None
    }
    assert ("reviewer-1", "reviewer-2") in reached


def test_with_every_task_cp_seed_47_decides_nothing_provisionally() -> None:
    world, result = _run(47, ap_tasks=False)
    assert result.ok, result.to_json()  # type: ignore[attr-defined]
    decisions = [r.envelope.body for r in world.records() if isinstance(r.envelope.body, Decision)]
    assert decisions
    assert not any(d.provisional for d in decisions)
