"""The supervisor's records out (synod.core.supervisor.intake), shared by the service and
synod.sim: a repeated remedy is the same record under the same id."""

from __future__ import annotations

from datetime import UTC, datetime

from synod.core import supervisor as core
from synod.core.supervisor import intake
from synod.wire import Sender

SUPERVISOR = Sender(role="supervisor", instance="supervisor-0")


def test_a_reassignment_is_one_record_per_attempt_judged() -> None:
    action = core.Reassign("t1", "s1", 2, "m2", 0.7, "rephrase", "loop")
    first = intake.reassigned(action, SUPERVISOR)
    again = intake.reassigned(action, SUPERVISOR)
    later = intake.reassigned(
        core.Reassign("t1", "s1", 3, "m2", 1.0, "step-by-step", "loop"), SUPERVISOR
    )
    assert first.message_id == again.message_id != later.message_id
    body = first.body
    assert (body.step_id, body.after_attempt, body.model, body.temperature) == ("s1", 2, "m2", 0.7)
    assert (body.prompt_variant, body.reason) == ("rephrase", "loop")
    assert (first.task_id, first.sender) == ("t1", SUPERVISOR)


def test_an_escalation_is_one_record_per_task() -> None:
    a = intake.escalation(core.Escalate("t1", "s1", 2, "stuck", 2), SUPERVISOR)
    b = intake.escalation(core.Escalate("t1", "s2", 5, "loop", 2), SUPERVISOR)
    assert a.message_id == b.message_id
    assert "still stuck" in a.body.reason


def test_notices_say_until_when_and_releases_say_inactive() -> None:
    until = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    on = intake.notice(core.Quarantine("r1", "reviewer", until.timestamp(), "wrong_votes", 3))
    assert (on.instance, on.active, on.until, on.strikes) == ("r1", True, until, 3)
    off = intake.notice(core.Release("r1", "reviewer", "served"))
    assert (off.active, off.until, off.reason) == (False, None, "served")
