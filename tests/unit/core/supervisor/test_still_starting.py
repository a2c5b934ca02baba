"""A restarted instance is starting until its first heartbeat: it is not restarted again
while it comes up, however long that takes on a loaded machine, up to start_timeout_s
(docs/chaos.md, "The last soak": a gateway SIGKILLed four more times while starting)."""

from __future__ import annotations

from tests.supervisorcore import run

from synod.core.supervisor import HeartbeatSeen, Restart, Supervisor, SupervisorConfig


def beats(sup: Supervisor, instance: str, start: float, n: int, seq0: int = 0) -> float:
    """One heartbeat and one tick a second from `start`; the time of the last."""
    t = start
    for i in range(n):
        sup.handle(HeartbeatSeen(instance, instance.split("-")[0], seq0 + i), t)
        assert [a for a in sup.tick(t) if isinstance(a, Restart)] == []
        t += 1.0
    return t - 1.0


def restarts(sup: Supervisor, until: float) -> list[Restart]:
    return [a for a in run(sup, until) if isinstance(a, Restart)]


def restarted_at(sup: Supervisor, until: float) -> float:
    """Tick to `until`; the time of the one restart in that span."""
    t = 0.0 if sup.last_tick is None else sup.last_tick + 1.0
    found = []
    while t <= until:
        found += [t for a in sup.tick(t) if isinstance(a, Restart)]
        t += 1.0
    assert len(found) == 1, found
    return found[0]


def test_a_start_longer_than_the_cooldown_is_not_killed_again() -> None:
    config = SupervisorConfig(restart_cooldown_s=30.0, start_timeout_s=120.0)
    sup = Supervisor(config)
    last = beats(sup, "gateway-0", 0.0, 30)
    first = restarted_at(sup, last + 10.0)
    # The new process takes 45 s to its first heartbeat (before: killed at 30 s).
    assert restarts(sup, first + 44.0) == []
    again = beats(sup, "gateway-0", first + 45.0, 30, seq0=0)
    assert restarts(sup, again + 3.0) == []


def test_a_start_that_never_ends_is_restarted_after_start_timeout() -> None:
    config = SupervisorConfig(restart_cooldown_s=30.0, start_timeout_s=120.0)
    sup = Supervisor(config)
    last = beats(sup, "gateway-0", 0.0, 30)
    first = restarted_at(sup, last + 10.0)
    assert restarted_at(sup, first + 125.0) == first + config.start_timeout_s


def test_once_it_has_beaten_it_is_judged_like_any_instance() -> None:
    """A new process that beat and then died is not waited for: found as fast as ever."""
    sup = Supervisor(SupervisorConfig(restart_cooldown_s=30.0, start_timeout_s=120.0))
    last = beats(sup, "coder-0", 0.0, 30)
    first = restarted_at(sup, last + 10.0)
    died = beats(sup, "coder-0", first + 5.0, 20, seq0=0)  # up at first + 5, then dies
    assert restarted_at(sup, died + 9.0) <= died + 8.0


def test_a_beat_of_the_old_process_ends_the_wait_and_the_cooldown_still_spaces() -> None:
    """The runtime did not kill it (none configured, or it was only slow): a heartbeat
    from the same process says it is up; if it goes silent again, the restart cooldown,
    not the start timeout, spaces the next restart."""
    config = SupervisorConfig(restart_cooldown_s=30.0, start_timeout_s=120.0)
    sup = Supervisor(config)
    last = beats(sup, "coder-0", 0.0, 30)
    first = restarted_at(sup, last + 10.0)
    sup.handle(HeartbeatSeen("coder-0", "coder", 30), first + 1.0)  # its seq goes on
    second = restarted_at(sup, first + 31.0)
    assert second == first + config.restart_cooldown_s


def test_a_start_timeout_under_the_cooldown_changes_nothing() -> None:
    config = SupervisorConfig(restart_cooldown_s=30.0, start_timeout_s=0.0)
    sup = Supervisor(config)
    last = beats(sup, "coder-0", 0.0, 30)
    first = restarted_at(sup, last + 10.0)
    assert restarted_at(sup, first + 31.0) == first + config.restart_cooldown_s
