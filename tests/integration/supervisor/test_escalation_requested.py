"""A step that outruns the supervisor's remedies puts its task to a person.

The coder's model never gives valid output (every reply malformed, the repair
turn too); the supervisor may reassign nothing (`max_reassignments=0`), so
when it sees the same failure twice in a row (a loop) it asks for a person:
an EscalationRequested on the task's log. No vote is needed to see it, so the
team is a planner, a coder and the supervisor. The planner parks the task on
an EscalationRaised of kind `supervisor` naming the step, and, unanswered
within its (short) timeout, the task fails with that reason.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from synod.core.task import TaskConfig
from synod.llm.faults import FaultProfile
from synod.llm.sim import SimBackend
from synod.roles.planner.service import Planner
from synod.roles.supervisor.service import SupervisorSettings
from synod.roles.supervisor.service import install as install_supervisor
from synod.roles.worker.service import WORK_TOPICS, Worker
from synod.service.host import ServiceContext
from synod.transport.topics import TASK_EVENTS, TASKS
from synod.wire import Envelope, PlanStep, StepFailed, TaskFailed, TaskSubmitted
from synod.wire.messages import EscalationRaised, EscalationRequested, StepReassigned

from .team import CLIENT, Team
from .test_loop_reassigned import FAST

pytestmark = pytest.mark.timeout(240)


async def test_a_step_looping_past_its_reassignments_escalates_its_task(kafka: Any) -> None:
    team = Team(kafka.bootstrap)
    await team.create_topics()
    honest = SimBackend(profile=FaultProfile("none", {}, FAST))
    broken = SimBackend(
        profile=FaultProfile("malformed", {"malformed": 1.0}, FAST, repair_success=0.0)
    )
    # Attempts enough that the task parks before the planner runs out of them.
    config = TaskConfig(step_deadline_s=30.0, max_step_attempts=10, escalation_timeout_s=2.0)
    try:

        def planner(ctx: ServiceContext) -> None:
            p = Planner(ctx, honest, config)
            p.consumer = ctx.consume("synod.planner", [TASKS, TASK_EVENTS], p.handle)
            p.consumer.on_assigned = p.rebuild
            ctx.background.append(p.sweep_deadlines)  # time passes for the parked task

        def coder(ctx: ServiceContext) -> None:
            w = Worker(ctx, "coder", broken)
            ctx.consume("synod.coder", [WORK_TOPICS["coder"]], w.handle, commit_interval_s=0.02)

        settings = SupervisorSettings(runtime="none", max_reassignments=0)
        await team.add("supervisor", "supervisor-0", lambda ctx: install_supervisor(ctx, settings))
        await team.add("planner", "planner-0", planner)
        await team.add("coder", "coder-0", coder)
        await team.assigned()

        task_id = f"escalate-{uuid.uuid4().hex[:8]}"
        plan = [PlanStep(step_id="c", role="coder", title="Write solve()")]
        body = TaskSubmitted(goal="Write solve()", reviewers=1, plan=plan)
        await team.submit(Envelope.new(body, sender=CLIENT, task_id=task_id))
        log = await team.log_of(task_id, timeout_s=120)
    finally:
        await team.close()

    assert not [e for e in log if isinstance(e.body, StepReassigned)]  # no remedy was left
    [asked] = [e for e in log if isinstance(e.body, EscalationRequested)]
    assert asked.sender.role == "supervisor"
    assert "step c keeps repeating the same outcome" in asked.body.reason
    failures = [e for e in log if isinstance(e.body, StepFailed)]
    assert len(failures) >= 2, failures
    assert all(f.body.error_class == "permanent" for f in failures)
    trail = [f"{e.type}#{e.attempt}:{e.message_id}" for e in log]
    raised_all = [e.body for e in log if isinstance(e.body, EscalationRaised)]
    assert len(raised_all) == 1, (trail, raised_all)
    [raised] = raised_all
    assert (raised.kind, raised.reason) == ("supervisor", asked.body.reason)
    outcome = log[-1].body
    assert isinstance(outcome, TaskFailed), outcome
    assert outcome.reason.startswith("escalation not answered within 2 s (supervisor: step c")
