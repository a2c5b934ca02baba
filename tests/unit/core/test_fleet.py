"""The console's agents table: heartbeat age, phi suspicion, restarts, quarantines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from synod.core.fleet import Fleet
from synod.wire import Heartbeat
from synod.wire.messages import QuarantineNotice


def beats(fleet: Fleet, instance: str, times: list[float], pid: int = 7, seq0: int = 0) -> None:
    for n, at in enumerate(times):
        fleet.heartbeat(Heartbeat(instance=instance, role="coder", seq=seq0 + n, pid=pid), at)


def test_a_silent_instance_goes_suspect_and_a_restarted_one_comes_back() -> None:
    fleet = Fleet()
    beats(fleet, "coder-0", [float(t) for t in range(10)])
    (row,) = fleet.agents(now=9.5)
    assert (row["health"], row["heartbeat_age_s"], row["restarts"]) == ("alive", 0.5, 0)
    (row,) = fleet.agents(now=30.0)
    assert row["health"] == "suspect"
    assert row["suspect"] is True
    # A new process under the same id: seq starts again, another pid.
    beats(fleet, "coder-0", [31.0, 32.0], pid=8)
    (row,) = fleet.agents(now=32.2)
    assert (row["health"], row["restarts"], row["pid"]) == ("alive", 1, 8)


def test_a_graceful_stop_is_not_suspect_and_old_instances_are_forgotten() -> None:
    fleet = Fleet()
    beats(fleet, "coder-0", [0.0, 1.0, 2.0, 3.0])
    fleet.heartbeat(Heartbeat(instance="coder-0", role="coder", seq=4, state="stopping"), 4.0)
    (row,) = fleet.agents(now=100.0)
    assert (row["health"], row["suspect"]) == ("stopped", False)
    assert fleet.agents(now=10_000.0) == []


def test_quarantine_and_breakers_show() -> None:
    fleet = Fleet()
    fleet.heartbeat(
        Heartbeat(instance="reviewer-1", role="reviewer", breakers={"m": "open"}), 100.0
    )
    until = datetime.fromtimestamp(400.0, UTC)
    fleet.quarantine(QuarantineNotice(instance="reviewer-1", until=until, reason="lied"))
    (row,) = fleet.agents(now=101.0)
    assert row["quarantined"] is True
    assert row["quarantine"]["reason"] == "lied"
    assert row["breakers"] == {"m": "open"}
    (row,) = fleet.agents(now=(until + timedelta(seconds=1)).timestamp())
    assert row["quarantined"] is False
