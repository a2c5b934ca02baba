"""The records the task core writes: ids derived from what they are, usage, failures.

Every record has an id derived from the task and what the record is
(`derived_id`), so deciding the same thing twice yields the same record, and
consumers drop the repeat.
"""

from __future__ import annotations

from typing import Any

from synod.core.plan.verdicts import verdict_of_runs
from synod.core.task import knowledge
from synod.core.task.actions import Publish
from synod.core.task.state import TaskState
from synod.ids import derived_id
from synod.wire import Body, StepRequested, TaskFailed, Usage
from synod.wire.messages import routing_labels


def publish(s: TaskState, body: Body, what: str, attempt: int = 0) -> Publish:
    causes = (s.submitted.message_id,) if s.submitted is not None else ()
    if isinstance(body, StepRequested) and s.submitted is not None:
        labels = routing_labels(s.submitted.body.labels)  # the task's model routing
        body = body.model_copy(update={"labels": labels}) if labels else body
    return Publish(body, derived_id(s.task_id, what), attempt, causes)


def request_id(s: TaskState, step_id: str, attempt: int) -> str:
    """The id of attempt `attempt`'s request of a plan step (write ids derive from it)."""
    return derived_id(s.task_id, f"step/{step_id}/{attempt}")


def usage(s: TaskState) -> Usage:
    """Every usage on the task's log: winners, hedge losers, parked runs, cancelled
    calls, jurors and the planner's own calls (see budget.py)."""
    total = Usage()
    for u in s.spent_by.values():
        total = add_usage(total, u)
    return total.model_copy(update={"cost_usd": round(total.cost_usd, 6)})


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        model=a.model or b.model,
        calls=a.calls + b.calls,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cost_usd=a.cost_usd + b.cost_usd,
        unpriced_calls=a.unpriced_calls + b.unpriced_calls,
    )


def tests_verdict(s: TaskState) -> tuple[bool | None, str]:
    """The jurors' runs of the tests on the decided answer."""
    if s.decision is None:
        return None, ""
    return verdict_of_runs(s.test_runs.get(s.decision.proposal_id, {}).values())


def outcome_key(s: TaskState) -> str:
    """The outcome's id key: a task reopened by an overturned decision ends anew."""
    return "outcome" if not s.overturned else f"outcome/{len(s.overturned) + 1}"


def fail(
    s: TaskState,
    reason: str,
    error_class: Any,
    step_id: str | None = None,
    unreachable: list[str] | None = None,
) -> Publish:
    # A task that fails after a decision failed on that answer: its test runs
    # say why; before any decision there is no answer to have tested.
    passed, summary = tests_verdict(s)
    body = TaskFailed(
        reason=reason[:10_000],
        error_class=error_class,
        failed_step=step_id,
        usage=usage(s),
        tests_passed=passed,
        tests_summary=summary,
        consistency=knowledge.consistency(s),
        unreachable=unreachable or [],
        partition_mode=s.submitted.body.partition_mode if s.submitted else "cp",
    )
    return publish(s, body, outcome_key(s))


def step_body(s: TaskState, step_id: str, agent: int | None = None) -> StepRequested:
    """The plain request for a step: its plan entry and its dependencies' outputs."""
    assert s.dag is not None
    step = s.dag.step(step_id)
    body = StepRequested(
        step_id=step_id,
        plan_id=s.plan.plan_id if s.plan else "",
        role="coder" if step.role == "coder" else "researcher",
        title=step.title,
        instructions=step.description or step.title,
        inputs={dep: s.completed[dep].output for dep in step.depends_on},
        deadline_s=s.config.step_deadline_s,
        files=list(step.files),
        agent=agent,
    )
    return knowledge.with_board(s, body)
