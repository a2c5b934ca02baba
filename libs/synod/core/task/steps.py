"""A plan step's attempts: which one is due, the team's room, when a step failed for good."""

from __future__ import annotations

from synod.core.task.actions import Publish
from synod.core.task.records import step_body
from synod.core.task.state import RESAMPLE_REASONS, TaskState
from synod.core.task.workspace import request


def attempt_due(s: TaskState, step_id: str) -> int | None:
    """The attempt to request now, or None if one is already out."""
    if step_id in s.completed:
        return None
    newest = s.requested.get(step_id)
    if newest is None:
        return 0
    if newest in s.failed_attempts.get(step_id, ()):  # the newest failed: retry it
        return newest + 1
    change = s.reassigned.get(step_id)
    if change is not None and change.after_attempt >= newest:
        return newest + 1  # the supervisor gave up on the newest (stuck or looping)
    return None


def room(s: TaskState) -> int | None:
    """Attempts this task may still start (label `team.agents`), None if uncapped.

    A coder instance takes several requests at once, so a team of N agents is
    N attempts in flight, not N instances. A hedged step counts once per copy.
    """
    cap = s.team_size()
    if cap is None:
        return None
    out = 0
    for step_id, newest in s.requested.items():
        if step_id in s.completed or newest in s.failed_attempts.get(step_id, ()):
            continue
        out += 1 + s.hedged.get(step_id, 0)
    return cap - out


def failed_for_good(s: TaskState) -> tuple[str, str] | None:
    for step_id, failures in s.failures.items():
        if step_id in s.completed:
            continue
        last = failures[-1]
        # A call refused for want of budget is the budget's to settle (budget.py):
        # after a raise the step runs again.
        retryable = last.reason in RESAMPLE_REASONS or last.reason == "budget_exhausted"
        if last.error_class != "transient" and not retryable:
            return step_id, f"step {step_id} failed ({last.error_class}): {last.error}"
        # Calls the budget refused were never made: they use no attempt.
        tried = [f for f in failures if f.reason != "budget_exhausted"]
        if len(tried) >= s.config.max_step_attempts + s.extra_attempts.get(step_id, 0):
            return step_id, (f"step {step_id} failed {len(tried)} times; last: {last.error}")
    return None


def step_request(s: TaskState, step_id: str, attempt: int, agent: int | None = None) -> Publish:
    body = step_body(s, step_id, agent)
    change = s.reassigned.get(step_id)
    if change is not None:
        body = body.model_copy(
            update={
                "model": change.model,
                "temperature": change.temperature,
                "prompt_variant": change.prompt_variant,
                "instructions": f"{body.instructions}\n\nEarlier attempts at this step "
                f"did not work ({change.reason}); take a different approach.",
            }
        )
    return request(s, body, f"step/{step_id}/{attempt}", attempt)
