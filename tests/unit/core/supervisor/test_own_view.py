"""A supervisor cut from the broker (its ticks go on, its consumer gets nothing) must not
count its own blindness as everyone's silence (docs/chaos.md, "The last soak").

`World` plays the adapter: the team beats once a second, the consumer fetches every
0.5 s while the path to the broker is up (each answer hands over the heartbeats sent
since the last, the intake dropping those older than 10 s), and every tick passes the
core the time of the consumer's last answer (`ViewSeen`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.supervisor import (
    Action,
    HeartbeatSeen,
    Reassign,
    Restart,
    StepCompletedSeen,
    StepRequestedSeen,
    Supervisor,
    SupervisorConfig,
    ViewSeen,
)

TEAM = ("coder-0", "coder-1", "planner-0", "researcher-0", "reviewer-0", "reviewer-1")
STALE_HEARTBEAT_S = 10.0  # synod.core.supervisor.intake drops older heartbeats


@dataclass
class World:
    sup: Supervisor
    cuts: list[tuple[float, float]] = field(default_factory=list)  # [from, to) with no answer
    dies: dict[str, float] = field(default_factory=dict)  # instance -> its last beat's time
    phase: float = 0.3  # the beats' offset within the second
    view: bool = True  # pass ViewSeen (False: an adapter of before the fix)
    fetch_every: float = 0.5  # how often an answer comes while the path is up
    read_from: float = 0.0  # the records of an answer are handled from this time on
    t: float = 0.0
    seqs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TEAM, 0))
    fetched_at: float | None = None
    sent: list[tuple[float, str, int]] = field(default_factory=list)  # (time, instance, seq)
    restarts: list[tuple[float, str]] = field(default_factory=list)
    actions: list[tuple[float, Action]] = field(default_factory=list)

    def cut(self, at: float) -> bool:
        return any(start <= at < end for start, end in self.cuts)

    def run(self, until: float) -> None:
        """In steps of 0.5 s from where it stopped: beats, fetches, and a tick each second."""
        while self.t <= until:
            t = self.t
            for name in TEAM:  # every live instance beats once a second
                beat = float(int(t)) + self.phase
                if t - 0.5 < beat <= t and beat <= self.dies.get(name, float("inf")):
                    self.beat(name, beat)
            if not self.cut(t) and t % self.fetch_every == 0:
                # An answer from the broker: what was sent since the last one.
                if t >= self.read_from:
                    for created, name, seq in self.sent:
                        if t - created <= STALE_HEARTBEAT_S:
                            self.sup.handle(HeartbeatSeen(name, name.split("-")[0], seq), t)
                    self.sent.clear()
                self.fetched_at = t
            if t == int(t):
                if self.view:
                    self.sup.handle(ViewSeen(self.fetched_at), t)
                for action in self.sup.tick(t):
                    self.actions.append((t, action))
                    if isinstance(action, Restart):
                        self.restarts.append((t, action.instance))
            self.t += 0.5

    def beat(self, name: str, at: float) -> None:
        self.sent.append((at, name, self.seqs[name]))
        self.seqs[name] += 1


def test_a_supervisor_cut_from_the_broker_restarts_nobody_while_cut() -> None:
    world = World(Supervisor(), cuts=[(30.0, 90.0)])
    world.run(89.0)
    assert world.restarts == []
    assert world.sup.view_stale


def test_without_its_view_it_restarts_everyone_while_cut() -> None:
    """What the fix is for: the adapter of before (no ViewSeen) kills the whole team."""
    world = World(Supervisor(), cuts=[(30.0, 90.0)], view=False)
    world.run(89.0)
    assert sorted(name for _, name in world.restarts) == sorted(TEAM)


def test_after_the_heal_nobody_live_is_restarted_and_the_dead_one_is() -> None:
    config = SupervisorConfig()
    world = World(Supervisor(config), cuts=[(30.0, 90.0)], dies={"coder-1": 50.3})
    world.run(130.0)
    assert [name for _, name in world.restarts] == ["coder-1"]
    [(at, _)] = world.restarts
    # After the hold, and about as soon after the view came back as a death is found
    # normally (6.8 s after the last heartbeat, plus a tick).
    assert 90.0 + config.wake_hold_s <= at <= 90.0 + 8.0
    assert world.sup.woke_from == "view"


def test_a_backlog_read_after_the_hold_restarts_nobody_live() -> None:
    """The time it was blind is not counted as silence even if the first heartbeats
    after the heal are handled only once the hold is over (a slow catch-up)."""
    world = World(Supervisor(), cuts=[(30.0, 90.0)], dies={"coder-1": 50.3})
    world.run(89.0)
    world.read_from = 95.5  # the hold ends at 95
    world.run(130.0)
    assert [name for _, name in world.restarts] == ["coder-1"]


def test_one_that_died_just_before_the_cut_is_restarted_after_it() -> None:
    world = World(Supervisor(), cuts=[(30.0, 60.0)], dies={"coder-0": 28.3})
    world.run(90.0)
    assert [name for _, name in world.restarts] == ["coder-0"]


def test_no_partition_held_is_a_stale_view() -> None:
    """Expelled from the group by a long cut: no partition, so no view at all."""
    sup = Supervisor()
    world = World(sup)
    world.run(20.0)
    for t in range(21, 60):
        sup.handle(ViewSeen(None), float(t))
        assert sup.tick(float(t)) == []
    assert sup.view_stale


def test_an_answer_a_little_late_is_not_a_cut() -> None:
    """A view up to view_stale_s old is current: a death is found as fast as without it."""
    times = {}
    for view in (True, False):
        world = World(Supervisor(), dies={"coder-0": 20.3}, view=view, fetch_every=1.5)
        world.run(40.0)
        times[view] = [t for t, _ in world.restarts]
    assert times[True] == times[False]
    assert len(times[True]) == 1


def test_a_step_whose_outcome_queued_during_the_cut_is_not_reassigned() -> None:
    sup = Supervisor(SupervisorConfig(lease_grace_s=5.0))
    sup.handle(StepRequestedSeen("t1", "s1", 0, 30.0, 10.0), 10.0)
    world = World(sup, cuts=[(19.0, 80.0)])
    world.run(79.0)  # the lease (10 + 30 + 5) ran out while cut
    # The completion (sent at 30 s) is read with the first answer after the heal.
    world.run(80.0)
    sup.handle(StepCompletedSeen("t1", "s1", 0, "coder-0", "out"), 80.0)
    world.run(100.0)
    assert [a for _, a in world.actions if isinstance(a, Reassign)] == []


def test_its_reachability_report_stops_while_its_view_is_stale() -> None:
    world = World(Supervisor(), cuts=[(30.0, 40.0)])
    world.run(29.0)
    assert world.sup.reachability(29.0) is not None
    world.run(33.0)  # 3 s cut: the view is stale, while it still heard everyone lately
    assert world.sup.reachability(33.0) is None


def test_a_pause_and_a_stale_view_together_are_one_wake() -> None:
    """SIGSTOP also stops the consumer: the first ticks after SIGCONT see both gaps."""
    world = World(Supervisor(), dies={"coder-0": 20.3})
    world.run(29.0)
    world.t = 89.0  # stopped for 60 s: no tick, no fetch, the beats queue up
    for t in range(29, 89):
        for name in TEAM:
            if name != "coder-0":
                world.beat(name, t + 0.3)
    world.cuts = [(89.0, 90.5)]  # the first answer after SIGCONT comes 1.5 s later
    world.run(130.0)
    assert [name for _, name in world.restarts] == ["coder-0"]


@settings(max_examples=60, deadline=None)
@given(
    start=st.floats(20.0, 40.0),
    length=st.floats(0.0, 200.0),
    phase=st.floats(0.0, 0.99),
)
def test_no_cut_of_any_length_or_phase_restarts_a_live_instance(
    start: float, length: float, phase: float
) -> None:
    world = World(Supervisor(), cuts=[(start, start + length)], phase=phase)
    world.run(start + length + 40.0)
    assert world.restarts == []
