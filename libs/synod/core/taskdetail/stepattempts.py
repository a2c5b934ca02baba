"""Every attempt of each step, matched to what became of it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from synod.core.taskdetail.cost import _usage_json
from synod.wire.messages import (
    Envelope,
    StepCancelled,
    StepClaimed,
    StepCompleted,
    StepFailed,
    StepReassigned,
    StepRequested,
    StepRetrying,
)


def attempts(envelopes: list[Envelope[Any]]) -> dict[str, list[dict[str, Any]]]:
    """step id -> its attempts in log order, each with what became of it."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_request: dict[str, dict[str, Any]] = {}
    for env in envelopes:
        body = env.body
        attempt: dict[str, Any]
        if isinstance(body, StepRequested):
            attempt = {
                "request_id": env.message_id,
                "attempt": env.attempt,
                "requested_at": env.created_at.isoformat(),
                "model": body.model,
                "temperature": body.temperature,
                "prompt_variant": body.prompt_variant,
                "hedge": body.prompt_variant == "hedge",
                "agent": body.agent,
                "deadline_s": body.deadline_s,
                "outcome": "pending",
                "worker": None,
                "duration_s": None,
                "usage": None,
                "error": "",
                "error_class": None,
                "retries": [],
                "reassigned": None,
                "cancelled": None,
            }
            out[body.step_id].append(attempt)
            by_request[env.message_id] = attempt
        elif isinstance(body, StepCompleted | StepFailed):
            attempt = _attempt_for(env, by_request, out, body.step_id)
            attempt["outcome"] = "completed" if isinstance(body, StepCompleted) else "failed"
            attempt["worker"] = env.sender.instance
            attempt["duration_s"] = body.duration_s
            attempt["usage"] = _usage_json(body.usage)
            attempt["finished_at"] = env.created_at.isoformat()
            if isinstance(body, StepFailed):
                attempt["error"] = body.error
                attempt["error_class"] = body.error_class
        elif isinstance(body, StepRetrying):
            attempt = _attempt_for(env, by_request, out, body.step_id)
            attempt["retries"].append(
                {
                    "retry": body.retry,
                    "reason": body.reason,
                    "error": body.error,
                    "due_at": body.due_at.isoformat(),
                    "worker": env.sender.instance,
                }
            )
        elif isinstance(body, StepReassigned):
            for attempt in out.get(body.step_id, []):
                if attempt["attempt"] == body.after_attempt:
                    attempt["reassigned"] = {
                        "reason": body.reason,
                        "model": body.model,
                        "temperature": body.temperature,
                        "prompt_variant": body.prompt_variant,
                        "by": env.sender.instance,
                    }
        elif isinstance(body, StepCancelled):
            for request_id in body.request_ids:
                if request_id in by_request:
                    by_request[request_id]["cancelled"] = body.reason or "cancelled"
        elif isinstance(body, StepClaimed):
            for attempt in reversed(out.get(body.step_id, [])):
                if attempt["agent"] is None:
                    attempt["agent"] = body.agent
                break
    return dict(out)


def _attempt_for(
    env: Envelope[Any],
    by_request: dict[str, dict[str, Any]],
    out: dict[str, list[dict[str, Any]]],
    step_id: str,
) -> dict[str, Any]:
    """The attempt an outcome belongs to: its cause, else the one of the same number."""
    for cause in env.causes:
        if cause in by_request:
            return by_request[cause]
    same_number = [a for a in out.get(step_id, []) if a["attempt"] == env.attempt]
    if same_number:
        return same_number[-1]
    # An outcome whose request is not in this log (evicted, or logged elsewhere).
    orphan: dict[str, Any] = {
        "request_id": None,
        "attempt": env.attempt,
        "requested_at": None,
        "model": "",
        "temperature": None,
        "prompt_variant": "",
        "hedge": False,
        "agent": None,
        "deadline_s": None,
        "outcome": "pending",
        "worker": None,
        "duration_s": None,
        "usage": None,
        "error": "",
        "error_class": None,
        "retries": [],
        "reassigned": None,
        "cancelled": None,
    }
    out[step_id].append(orphan)
    return orphan
