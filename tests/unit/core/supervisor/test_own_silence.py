"""A supervisor that was not running (SIGSTOP, a GC pause, a VM migration) must not
count its own silence as everyone's (docs/chaos.md, "The last soak")."""

from __future__ import annotations

from synod.core.supervisor import (
    HeartbeatSeen,
    Reassign,
    Restart,
    StepCompletedSeen,
    StepRequestedSeen,
    Supervisor,
    SupervisorConfig,
)

TEAM = ("coder-0", "coder-1", "planner-0", "researcher-0", "reviewer-0", "reviewer-1")
DIES = "coder-1"  # dies while the supervisor is stopped


def role(name: str) -> str:
    return name.split("-")[0]


def watched(sup: Supervisor, until: float) -> dict[str, int]:
    """Every instance beats and the supervisor ticks once a second from 0 to `until`."""
    seqs = dict.fromkeys(TEAM, 0)
    t = 0.0
    while t <= until:
        for name in TEAM:
            assert sup.handle(HeartbeatSeen(name, role(name), seqs[name]), t) == []
            seqs[name] += 1
        assert sup.tick(t) == []
        t += 1.0
    return seqs


def wake_after_gap(sup: Supervisor, seqs: dict[str, int], woke: float) -> None:
    """The backlog the survivors queued while the supervisor was stopped: the last 10 s
    of it (the intake drops older heartbeats), all read just after the wake."""
    for name in TEAM:
        if name == DIES:
            continue
        for _ in range(10):
            assert sup.handle(HeartbeatSeen(name, role(name), seqs[name]), woke + 0.2) == []
            seqs[name] += 1


def test_a_wake_after_a_long_gap_restarts_nobody_at_once() -> None:
    sup = Supervisor(SupervisorConfig(tick_interval_s=1.0))
    watched(sup, 29.0)
    # Stopped for 60 s: no tick and no record read; it ticks first on waking.
    restarts = [a.instance for a in sup.tick(89.0) if isinstance(a, Restart)]
    assert restarts == []  # before the fix: every instance, in the same millisecond


def test_one_that_really_died_during_the_gap_is_still_restarted_after_the_wake() -> None:
    config = SupervisorConfig(tick_interval_s=1.0, wake_hold_s=5.0)
    sup = Supervisor(config)
    seqs = watched(sup, 29.0)
    woke = 89.0
    assert sup.tick(woke) == []
    wake_after_gap(sup, seqs, woke)
    restarted: list[tuple[float, str]] = []
    t = woke + 1.0
    while t <= woke + 40.0:
        for name in TEAM:
            if name != DIES:
                sup.handle(HeartbeatSeen(name, role(name), seqs[name]), t)
                seqs[name] += 1
        restarted += [(t, a.instance) for a in sup.tick(t) if isinstance(a, Restart)]
        t += 1.0
    # Only the dead one, once (it is left to start until it beats, up to 120 s), after
    # the hold, and about as soon after the wake as a death is found normally (6.8 s
    # plus a tick).
    assert [name for _, name in restarted] == [DIES]
    first = restarted[0][0]
    assert woke + config.wake_hold_s <= first <= woke + 8.0


def test_a_step_whose_outcome_queued_during_the_gap_is_not_reassigned() -> None:
    sup = Supervisor(SupervisorConfig(tick_interval_s=1.0, lease_grace_s=5.0))
    sup.handle(StepRequestedSeen("t1", "s1", 0, 30.0, 10.0), 10.0)
    for t in range(0, 20):
        assert sup.tick(float(t)) == []
    # Stopped from 19 s to 80 s: the lease (10 + 30 + 5) ran out meanwhile, and the
    # step's completion (sent at 30 s) sits unread in the backlog.
    assert sup.tick(80.0) == []
    sup.handle(StepCompletedSeen("t1", "s1", 0, "coder-0", "out"), 80.3)
    for t in range(81, 100):
        assert [a for a in sup.tick(float(t)) if isinstance(a, Reassign)] == []


def test_a_short_gap_is_not_a_wake() -> None:
    sup = Supervisor(SupervisorConfig(tick_interval_s=1.0, wake_gap_factor=3.0))
    sup.tick(0.0)
    sup.tick(3.0)  # 3 intervals: still a tick that came late, not a pause
    assert sup.woke_at is None
    sup.tick(6.5)
    assert sup.woke_at == 6.5
