"""What a worker or a juror publishes for one request, with ids derived from the request.

The worker service and the simulator both build their records here, so a
redelivered request yields the same records under the same ids (duplicates
consumers drop), and the order that keeps a completed step's files readable
(writes first, then the outcome) is stated once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from synod.core.bugs import planted
from synod.core.workspace import writes_for
from synod.ids import derived_id
from synod.wire import Envelope, Sender, StepCompleted, StepFailed, StepRequested, Vote


def _fields(request: Envelope[Any], created_at: datetime | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"trace": request.trace}
    if created_at is not None:
        fields["created_at"] = created_at
    return fields


def step_records(
    request: Envelope[StepRequested],
    result: StepCompleted | StepFailed,
    sender: Sender,
    created_at: datetime | None = None,
) -> list[tuple[str, Envelope[Any]]]:
    """("workspace" | "task-events", envelope) in publish order: a completed step's
    file writes, then its outcome, so a StepCompleted on the log always has its files."""
    step, task_id = request.body, request.task_id or ""
    fields = _fields(request, created_at)
    out: list[tuple[str, Envelope[Any]]] = []
    if isinstance(result, StepCompleted) and step.files:
        writes = writes_for(
            task_id,
            step.step_id,
            request.message_id,
            sender.instance,
            step.files,
            step.title,
            result.output,
            base_versions=step.base_versions,
            lease_tokens=step.lease_tokens,
        )
        for write in writes:
            envelope = Envelope.new(
                write,
                sender=sender,
                task_id=task_id,
                message_id=write.write_id,
                causes=[request.message_id],
                attempt=request.attempt,
                **fields,
            )
            out.append(("workspace", envelope))
    outcome = Envelope.new(
        result,
        sender=sender,
        task_id=task_id,
        message_id=derived_id(request.message_id, "outcome"),
        causes=[request.message_id],
        attempt=request.attempt,
        **fields,
    )
    if planted("outcome_before_writes"):
        return [("task-events", outcome), *out]
    return [*out, ("task-events", outcome)]


def vote_record(
    request: Envelope[Any], vote: Vote, sender: Sender, created_at: datetime | None = None
) -> Envelope[Vote]:
    """A juror's vote on a round request: one id per juror and round, whatever it says."""
    return Envelope.new(
        vote,
        sender=sender,
        task_id=request.task_id,
        message_id=derived_id(request.message_id, sender.instance),
        causes=[request.message_id],
        **_fields(request, created_at),
    )
