"""Planning waits out an open breaker instead of failing the task.

An open breaker means no call was made; after a planner restart a burst of
timeouts can open it for a few seconds, and every task planned in that window
used to fail with "planning failed: circuit open".
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.taskcore import fold, next_actions

from synod.core.task import TaskConfig, TaskMachine
from synod.llm import LLMRequest, LLMResponse, PlanOutput
from synod.llm.errors import LLMTransientError
from synod.roles.planner.service import PLAN_ATTEMPTS, Planner
from synod.wire import Envelope, PlanProposed, Sender, TaskFailed, TaskSubmitted, Usage

CLIENT = Sender(role="client", instance="c")


class BreakerThenModel:
    """Open for the first `open_calls` calls (with a short retry-after), then a plan."""

    def __init__(self, open_calls: int, retry_after_s: float = 0.01) -> None:
        self.open_calls = open_calls
        self.retry_after_s = retry_after_s
        self.calls: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls.append(request)
        if len(self.calls) <= self.open_calls:
            raise LLMTransientError(
                "every breaker is open", reason="circuit_open", retry_after_s=self.retry_after_s
            )
        plan = PlanOutput.model_validate(
            {"steps": [{"step_id": "s1", "role": "researcher", "title": "look"}]}
        )
        return LLMResponse(
            text=plan.model_dump_json(), parsed=plan, usage=Usage(), model="m", latency_s=0.0
        )


def machine(deadline_s: float) -> TaskMachine:
    m = TaskMachine("t1", TaskConfig(step_deadline_s=1.0))
    fold(
        m, Envelope.new(TaskSubmitted(goal="g", deadline_s=deadline_s), sender=CLIENT, task_id="t1")
    )
    return m


def plan_with(llm: Any, m: TaskMachine) -> Any:
    planner = Planner(ctx=None, llm=llm, config=TaskConfig(step_deadline_s=1.0))  # type: ignore[arg-type]
    m.step(asyncio.run(planner.make_plan(m)))  # the model's answer goes into the machine
    [action] = next_actions(m)  # and comes out as the record to log
    return action.body


def test_more_open_breakers_than_attempts_still_end_in_a_plan() -> None:
    llm = BreakerThenModel(open_calls=PLAN_ATTEMPTS + 3)
    body = plan_with(llm, machine(deadline_s=600))
    assert isinstance(body, PlanProposed)
    assert len(llm.calls) == PLAN_ATTEMPTS + 4


def test_no_time_left_in_the_task_fails_planning_with_the_reason() -> None:
    # deadline 1 s minus a 1 s step deadline: no room to wait a breaker out
    llm = BreakerThenModel(open_calls=100)
    body = plan_with(llm, machine(deadline_s=1.0))
    assert isinstance(body, TaskFailed)
    assert "circuit" in body.reason or "breaker" in body.reason
    assert len(llm.calls) == PLAN_ATTEMPTS
