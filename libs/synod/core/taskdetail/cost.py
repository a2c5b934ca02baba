"""Tokens and cost of a task's step outcomes, and of several tasks summed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from synod.core.taskview import add_usage
from synod.wire.messages import (
    Envelope,
    StepCompleted,
    StepFailed,
    StepRequested,
    StepRetrying,
    Usage,
)


def _usage_json(usage: Usage) -> dict[str, Any]:
    return usage.model_dump(mode="json")


def cost_of(envelopes: Iterable[Envelope[Any]]) -> dict[str, Any]:
    """Tokens and cost of the task's step outcomes, in total, by role and by model."""
    roles: dict[str, str] = {}
    total = Usage()
    by_role: dict[str, Usage] = {}
    by_model: dict[str, Usage] = {}
    for env in envelopes:
        body = env.body
        if isinstance(body, StepRequested):
            roles[body.step_id] = body.role
        elif isinstance(body, StepCompleted | StepFailed | StepRetrying):
            role = roles.get(body.step_id, env.sender.role)
            model = body.usage.model or "(unknown)"
            total = add_usage(total, body.usage)
            by_role[role] = add_usage(by_role.get(role, Usage()), body.usage)
            by_model[model] = add_usage(by_model.get(model, Usage()), body.usage)
    return {
        "total": _usage_json(total),
        "by_role": {k: _usage_json(v) for k, v in sorted(by_role.items())},
        "by_model": {k: _usage_json(v) for k, v in sorted(by_model.items())},
    }


def merge_cost(costs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several tasks' `cost_of` documents summed (the console's cost page)."""
    total = Usage()
    by_role: dict[str, Usage] = {}
    by_model: dict[str, Usage] = {}
    for cost in costs:
        total = add_usage(total, Usage.model_validate(cost["total"]))
        for name, usage in cost["by_role"].items():
            by_role[name] = add_usage(by_role.get(name, Usage()), Usage.model_validate(usage))
        for name, usage in cost["by_model"].items():
            by_model[name] = add_usage(by_model.get(name, Usage()), Usage.model_validate(usage))
    return {
        "total": _usage_json(total),
        "by_role": {k: _usage_json(v) for k, v in sorted(by_role.items())},
        "by_model": {k: _usage_json(v) for k, v in sorted(by_model.items())},
    }
