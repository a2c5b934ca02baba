"""The supervisor asks for a person when a step outruns its remedies (docs/adr/0011)."""

from __future__ import annotations

from tests.supervisorcore import run

from synod.core.supervisor import (
    Escalate,
    Reassign,
    StepCompletedSeen,
    StepFailedSeen,
    StepRequestedSeen,
    Supervisor,
    SupervisorConfig,
    TaskEnded,
)


def request(attempt: int, at: float, task: str = "t1", step: str = "s1") -> StepRequestedSeen:
    return StepRequestedSeen(task, step, attempt, 30.0, at)


def test_a_step_still_stuck_after_its_reassignments_is_escalated_once() -> None:
    sup = Supervisor(SupervisorConfig(lease_grace_s=5.0, max_reassignments=2))
    actions = []
    for attempt in range(3):
        at = 100.0 * attempt
        sup.handle(request(attempt, at), at)
        actions += run(sup, at + 36.0)  # past deadline and grace: stuck
    kinds = [type(a).__name__ for a in actions]
    assert kinds == ["Reassign", "Reassign", "Escalate"]
    escalate = actions[-1]
    assert isinstance(escalate, Escalate)
    assert (escalate.task_id, escalate.step_id, escalate.after_attempt) == ("t1", "s1", 2)
    assert (escalate.reason, escalate.reassignments) == ("stuck", 2)
    assert "s1 is still stuck" in escalate.explain()
    assert "after 2 reassignments" in escalate.explain()
    # Every later tick sees the same stuck attempt: it is not asked about again.
    assert run(sup, 1_000.0) == []


def test_a_step_that_keeps_looping_is_escalated_and_its_task_only_once() -> None:
    sup = Supervisor(SupervisorConfig(max_reassignments=1))
    out = []
    for attempt in range(4):
        sup.handle(request(attempt, float(attempt)), float(attempt))
        out += sup.handle(StepCompletedSeen("t1", "s1", attempt, "c", "same"), attempt + 0.5)
    assert [type(a).__name__ for a in out] == ["Reassign", "Escalate"]
    assert isinstance(out[1], Escalate)
    assert out[1].reason == "loop"
    assert "keeps repeating the same outcome" in out[1].explain()
    # Another step of the same task running out too: the task is asked about once.
    for attempt in range(4):
        sup.handle(request(attempt, 10.0 + attempt, step="s2"), 10.0 + attempt)
        failed = StepFailedSeen("t1", "s2", attempt, "c", "permanent/invalid_output")
        out += sup.handle(failed, 10.5 + attempt)
    assert [type(a).__name__ for a in out].count("Escalate") == 1


def test_a_task_that_ended_and_another_task_are_each_asked_about_anew() -> None:
    sup = Supervisor(SupervisorConfig(max_reassignments=0))
    sup.handle(StepFailedSeen("t1", "s1", 0, "c", "permanent/invalid_output"), 0.0)
    [first] = sup.handle(StepFailedSeen("t1", "s1", 1, "c", "permanent/invalid_output"), 1.0)
    assert isinstance(first, Escalate)
    sup.handle(StepFailedSeen("t2", "s1", 0, "c", "permanent/invalid_output"), 2.0)
    [other] = sup.handle(StepFailedSeen("t2", "s1", 1, "c", "permanent/invalid_output"), 3.0)
    assert isinstance(other, Escalate)
    assert other.task_id == "t2"
    sup.handle(TaskEnded("t1"), 4.0)
    assert "t1" not in sup.escalated


def test_weather_is_never_escalated_and_escalation_can_be_turned_off() -> None:
    # The same 429 again and again is the provider, not the agent: no loop, no escalation.
    sup = Supervisor(SupervisorConfig(max_reassignments=0, attempt_budget=100))
    for attempt in range(10):
        failed = StepFailedSeen("t1", "s1", attempt, "c", "transient/rate_limited", False)
        assert sup.handle(failed, float(attempt)) == []
    off = Supervisor(SupervisorConfig(max_reassignments=0, escalate=False))
    off.handle(StepFailedSeen("t1", "s1", 0, "c", "permanent/invalid_output"), 0.0)
    assert off.handle(StepFailedSeen("t1", "s1", 1, "c", "permanent/invalid_output"), 1.0) == []


def test_while_reassignments_are_left_the_step_is_reassigned_not_escalated() -> None:
    sup = Supervisor(SupervisorConfig(max_reassignments=2))
    sup.handle(StepFailedSeen("t1", "s1", 0, "c", "permanent/invalid_output"), 0.0)
    [action] = sup.handle(StepFailedSeen("t1", "s1", 1, "c", "permanent/invalid_output"), 1.0)
    assert isinstance(action, Reassign)
    assert sup.escalated == {}
