"""A step stuck in a loop is detected by the supervisor and reassigned; the task completes.

The coder's model is stuck on step `c`: every call with the default model
replays its first reply byte for byte (the sim's `loop` behaviour), and that
reply is wrong. The reviewers reject it, the revision repeats it, the
supervisor sees the same output signature twice and appends StepReassigned
(another model) to the task's log; the planner runs a new attempt on that
model, whose answer is right, and the task completes. Without the supervisor
the second round would reject the same answer and the task would fail.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from synod.core.task import TaskConfig
from synod.llm import LLMRequest, LLMResponse
from synod.llm.faults import FaultProfile, Latency
from synod.llm.sim import SimBackend
from synod.llm.simcontent import WRONG_MARKER
from synod.roles.consensus.service import install as install_consensus
from synod.roles.planner.service import Planner
from synod.roles.reviewer.service import Reviewer
from synod.roles.supervisor.service import SupervisorSettings
from synod.roles.supervisor.service import install as install_supervisor
from synod.roles.worker.service import WORK_TOPICS, Worker
from synod.service.host import ServiceContext
from synod.transport.topics import TASK_EVENTS, TASKS, VOTES
from synod.wire import Envelope, PlanStep, StepRequested, TaskCompleted, TaskSubmitted
from synod.wire.messages import StepReassigned

from .team import CLIENT, Team

pytestmark = pytest.mark.timeout(240)
FAST = Latency("fixed", 0.01)


class LoopingModel:
    """Default model: replays its first (wrong) reply. Any other model: a good sim."""

    name = "looping"

    def __init__(self) -> None:
        self.stuck = SimBackend(profile=FaultProfile("wrong", {"wrong": 1.0}, FAST))
        self.other = SimBackend(profile=FaultProfile("none", {}, FAST))
        self.first: dict[tuple[str, str], LLMResponse] = {}
        self.models: list[str | None] = []

    def describe(self) -> str:
        return self.name

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.models.append(request.model)
        if request.model:
            return await self.other.complete(request)
        key = (request.task_id, request.step_id)
        if key not in self.first:
            self.first[key] = await self.stuck.complete(request)
        return self.first[key]

    async def aclose(self) -> None:
        return None


async def test_a_looping_step_is_reassigned_to_another_model_and_the_task_completes(
    kafka: Any,
) -> None:
    team = Team(kafka.bootstrap)
    await team.create_topics()
    honest = SimBackend(profile=FaultProfile("none", {}, FAST))
    coder_model = LoopingModel()
    config = TaskConfig(step_deadline_s=30.0, vote_deadline_s=20.0, max_answer_rounds=2)
    try:

        def planner(ctx: ServiceContext) -> None:
            p = Planner(ctx, honest, config)
            ctx.consume("synod.planner", [TASKS, TASK_EVENTS], p.handle).on_assigned = p.rebuild

        def coder(ctx: ServiceContext) -> None:
            w = Worker(ctx, "coder", coder_model)  # type: ignore[arg-type]
            ctx.consume("synod.coder", [WORK_TOPICS["coder"]], w.handle, commit_interval_s=0.02)

        def reviewer(ctx: ServiceContext) -> None:
            r = Reviewer(ctx, honest)
            ctx.consume(f"synod.reviewer.{ctx.instance}", [VOTES], r.handle)

        settings = SupervisorSettings(runtime="none", models="sim-b")
        await team.add("supervisor", "supervisor-0", lambda ctx: install_supervisor(ctx, settings))
        await team.add("consensus", "consensus-0", lambda ctx: install_consensus(ctx, print))
        await team.add("planner", "planner-0", planner)
        await team.add("coder", "coder-0", coder)
        for i in range(3):
            await team.add("reviewer", f"reviewer-{i}", reviewer)
        await team.assigned()

        task_id = f"loop-{uuid.uuid4().hex[:8]}"
        plan = [PlanStep(step_id="c", role="coder", title="Write solve()")]
        body = TaskSubmitted(goal="Write solve()", reviewers=3, plan=plan)
        await team.submit(Envelope.new(body, sender=CLIENT, task_id=task_id))
        log = await team.log_of(task_id, timeout_s=180)
    finally:
        await team.close()

    [reassigned] = [e.body for e in log if isinstance(e.body, StepReassigned)]
    assert (reassigned.step_id, reassigned.reason, reassigned.model) == ("c", "loop", "sim-b")
    assert reassigned.prompt_variant.startswith("revise-2+")
    requests = [e for e in log if isinstance(e.body, StepRequested)]
    assert [e.attempt for e in requests] == [0, 1, 2]
    assert requests[-1].body.model == "sim-b"
    outcome = log[-1].body
    assert isinstance(outcome, TaskCompleted), outcome
    assert WRONG_MARKER not in outcome.result
    assert coder_model.models == [None, None, "sim-b"]
