"""The supervisor core in the sim: it finds the instances that went silent, and only those,
and it quarantines a lying juror with a notice on synod.supervisor.

Its heartbeats and ticks draw nothing from the seed, so a run watched by it is
the run the other sim tests check; these tests check what it concludes.
"""

from __future__ import annotations

from synod.sim.faults import FaultPlan
from synod.sim.world import HEARTBEAT_S, SimConfig, World
from synod.wire.messages import QuarantineNotice

# The supervisor's default phi threshold is crossed after about this much silence
# at the sim's heartbeat rhythm (2 s, the detector's 3 s acceptable pause).
FOUND_WITHIN_S = 12.0


def _silent_at(world: World, name: str, t: float) -> bool:
    # A heartbeat sent just before the silence may still be counted one beat later.
    return any(a <= t <= b + HEARTBEAT_S for a, b in world.silent.get(name, []))


def _merged(spans: list[list[float]]) -> list[tuple[float, float]]:
    """Silences with no heartbeat between them are one to the supervisor (a process
    that crashed again before its first beat never came back, as far as it knows)."""
    out: list[tuple[float, float]] = []
    for a, b in spans:
        if out and a - out[-1][1] < HEARTBEAT_S:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def test_crashed_and_paused_instances_are_found_and_no_live_one_is() -> None:
    found = long_silences = 0
    for seed in range(8):
        world = World(SimConfig(seed=seed, tasks=3, plan=FaultPlan(frozenset({"crash", "pause"}))))
        result = world.run()
        assert result.ok, seed
        for t, name in result.detected:
            assert _silent_at(world, name, t), f"seed {seed}: {name} found dead at {t} while alive"
        for name, spans in world.silent.items():
            for a, b in _merged(spans):
                if b - a >= FOUND_WITHIN_S and b <= result.virtual_s:
                    long_silences += 1
                    hit = any(n == name and a <= t <= b for t, n in result.detected)
                    assert hit, f"seed {seed}: {name} silent {a:.1f}-{b:.1f} s, not found"
                    found += 1
    assert long_silences > 5, "the seeds gave too few long silences to judge"
    assert found == long_silences


def test_a_lying_juror_is_quarantined_on_the_log_and_no_honest_one_is() -> None:
    # Four jurors: with three, the core keeps the liar (never fewer than three reviewers).
    quarantined: set[str] = set()
    for seed in range(4):
        world = World(
            SimConfig(seed=seed, tasks=6, reviewers=4, plan=FaultPlan(frozenset({"liar"})))
        )
        result = world.run()
        assert result.ok, seed
        notices = [
            r.envelope.body
            for r in world.records()
            if isinstance(r.envelope.body, QuarantineNotice) and r.envelope.body.active
        ]
        assert [n.instance for n in notices] == result.quarantined
        assert set(result.quarantined) <= {world.liar}, (seed, world.liar, result.quarantined)
        quarantined |= set(result.quarantined)
    assert quarantined, "no seed got its liar quarantined"


def test_three_jurors_are_never_cut_below_the_electorate() -> None:
    for seed in range(2):
        result = World(SimConfig(seed=seed, tasks=6, plan=FaultPlan(frozenset({"liar"})))).run()
        assert result.ok, seed
        assert result.quarantined == [], seed
