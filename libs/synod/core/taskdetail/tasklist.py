"""One row of the console's task list, and the list's filter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synod.core.taskdetail.cost import _usage_json
from synod.core.taskview import TaskView


def task_summary(view: TaskView) -> dict[str, Any]:
    """One row of the console's task list."""
    request = view.request
    status = view.status()
    return {
        "task_id": view.task_id,
        "state": status.state,
        "goal": status.goal[:200],
        "labels": dict(request.labels) if request else {},
        "consistency": request.consistency if request else "",
        "partition_mode": request.partition_mode if request else "",
        "settlement": status.settlement,
        "overturned": len(status.overturned),
        "submitted_at": status.submitted_at.isoformat() if status.submitted_at else None,
        "updated_at": status.updated_at.isoformat() if status.updated_at else None,
        "finished_at": status.finished_at.isoformat() if status.finished_at else None,
        "steps": len(status.steps),
        "steps_completed": sum(1 for s in status.steps if s.status == "completed"),
        "usage": _usage_json(status.usage),
        "version": view.version,
    }


def matches(summary: Mapping[str, Any], query: str = "", state: str = "", label: str = "") -> bool:
    """The task list's filter: `query` in the id or goal (any case), `state` exact,
    `label` as `key` (present) or `key=value`."""
    if state and summary["state"] != state:
        return False
    if query:
        needle = query.lower()
        labels = " ".join(f"{k}={v}" for k, v in summary["labels"].items())
        if not any(
            needle in text.lower() for text in (summary["task_id"], summary["goal"], labels)
        ):
            return False
    if label:
        key, has_value, value = label.partition("=")
        if key not in summary["labels"]:
            return False
        if has_value and summary["labels"][key] != value:
            return False
    return True
