"""Attempts that wait or are redone: parked retries, the supervisor's reassignments."""

from __future__ import annotations

from datetime import datetime, timedelta

from synod.core.task.state import TaskState, revision_round, round_of
from synod.wire.messages import StepReassigned, StepRetrying


def revision_of(prompt_variant: str) -> int | None:
    """The answer round a request revises (`revise-N`), None for other requests."""
    head, _, number = prompt_variant.partition("revise-")
    return int(number) if not head and number.isdigit() else None


def park(s: TaskState, body: StepRetrying, attempt: int) -> None:
    """The attempt waits in a retry topic and runs again at `due_at`: it is not
    lost, so its clock (hedging, the stuck check) starts again from then."""
    if attempt != s.requested.get(body.step_id):
        return  # an older attempt's retry; the newest one is what is out
    s.parked[body.step_id] = (attempt, body.due_at + timedelta(seconds=body.deadline_s))
    s.requested_at[body.step_id] = max(s.requested_at[body.step_id], body.due_at)


def parked_then(s: TaskState, body: StepReassigned, at: datetime) -> bool:
    """True for a "stuck" reassignment of an attempt that was only waiting in a
    retry topic: made before the attempt's rerun could have ended, it would
    start a duplicate attempt."""
    parked = s.parked.get(body.step_id)
    if body.reason != "stuck" or parked is None or parked[0] != body.after_attempt:
        return False
    return at < parked[1]


def reassign(s: TaskState, body: StepReassigned) -> None:
    step_id = body.step_id
    if s.outcome is not None:
        return  # a finished task is never redone
    if step_id in s.completed:
        looped = body.reason == "loop" and s.completed_attempt[step_id] <= body.after_attempt
        if not looped:
            return  # a finished step is never redone
        # The completion repeated an earlier output: it does not count, and the
        # answer gets another round once the new attempt is in.
        s.completed.pop(step_id)
        s.revision_floor[step_id] = body.after_attempt + 1
        # The looping output may already be out for a vote this machine has
        # asked for but not yet folded back: the round of the revision it was
        # (or the newest vote) is spent, the new attempt gets the next one.
        voted = round_of(s.vote.proposal_id) if s.vote is not None else 1
        s.revised_in[step_id] = max(voted, revision_round(s)) + 1
    s.reassigned[step_id] = body
    s.extra_attempts[step_id] = s.extra_attempts.get(step_id, 0) + 1
