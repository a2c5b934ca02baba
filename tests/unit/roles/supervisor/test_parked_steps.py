"""A step parked in a retry topic is not stuck until its rerun could have ended."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from tests.supervisorcore import run

from synod.core import supervisor as core
from synod.core.supervisor import (
    Reassign,
    StepParkedSeen,
    StepRequestedSeen,
    Supervisor,
    SupervisorConfig,
)
from synod.roles.supervisor.service import SupervisorService
from synod.runtimes import NoRuntime
from synod.wire import Envelope, Sender
from synod.wire.messages import StepRetrying


def test_a_parked_attempt_is_stuck_only_after_its_rerun_and_the_grace() -> None:
    sup = Supervisor(SupervisorConfig(lease_grace_s=5.0))
    sup.handle(StepRequestedSeen("t1", "s1", 0, 30.0, 0.0), 0.0)
    sup.handle(StepParkedSeen("t1", "s1", 0, until=80.0), 31.0)  # due at 50, deadline 30
    assert run(sup, 36.0) == []  # past the first run's lease: only waiting
    assert run(sup, 85.0) == []
    [reassign] = sup.tick(85.1)
    assert isinstance(reassign, Reassign)
    assert (reassign.after_attempt, reassign.reason) == (0, "stuck")


def test_parking_an_older_attempt_does_not_shield_the_newest() -> None:
    sup = Supervisor(SupervisorConfig(lease_grace_s=5.0))
    sup.handle(StepRequestedSeen("t1", "s1", 0, 30.0, 0.0), 0.0)
    sup.handle(StepRequestedSeen("t1", "s1", 1, 30.0, 10.0), 10.0)
    sup.handle(StepParkedSeen("t1", "s1", 0, until=500.0), 11.0)
    [reassign] = sup.tick(45.1)
    assert isinstance(reassign, Reassign)
    assert reassign.after_attempt == 1


def test_the_adapter_reads_step_retrying_as_a_parked_attempt() -> None:
    ctx: Any = SimpleNamespace(instance="supervisor-0")
    service = SupervisorService(ctx, core.SupervisorConfig(), NoRuntime())
    due = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    body = StepRetrying(step_id="s1", retry=2, due_at=due, reason="overloaded", deadline_s=7.5)
    env = Envelope.new(
        body, sender=Sender(role="coder", instance="coder-0"), task_id="t1", attempt=3
    )
    assert service.events(env, 0.0) == [StepParkedSeen("t1", "s1", 3, due.timestamp() + 7.5)]
