"""The whole document of the console's task page, from its parts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from synod.core.taskdetail.cost import cost_of
from synod.core.taskdetail.events import timeline
from synod.core.taskdetail.plangraph import dag
from synod.core.taskdetail.stepattempts import attempts
from synod.core.taskdetail.voting import ballots, verdict_of_tests
from synod.core.taskview import TaskView
from synod.wire.messages import Envelope


def task_detail(view: TaskView, votes: Iterable[Envelope[Any]] = ()) -> dict[str, Any]:
    """Everything the console's task page shows, as one JSON-ready document."""
    status = view.to_json()
    status.pop("events", None)
    envelopes = view.envelopes()
    entries = view.entries()
    vote_envelopes = _unique(votes)
    return {
        "task": status,
        "mode": _mode(status),
        "trace_id": trace_id_of(envelopes),
        "dag": dag(status["steps"]),
        "attempts": attempts(envelopes),
        "timeline": timeline(entries),
        "ballots": ballots(envelopes, vote_envelopes),
        "tests": verdict_of_tests(envelopes),
        "cost": cost_of(envelopes),
    }


def _unique(envelopes: Iterable[Envelope[Any]]) -> list[Envelope[Any]]:
    seen: dict[str, Envelope[Any]] = {}
    for env in envelopes:
        seen.setdefault(env.message_id, env)
    return list(seen.values())


def _mode(status: Mapping[str, Any]) -> dict[str, str]:
    request = status.get("request") or {}
    return {
        "consistency": request.get("consistency", ""),
        "partition_mode": request.get("partition_mode", ""),
        "policy": request.get("policy", ""),
    }


def trace_id_of(envelopes: Iterable[Envelope[Any]]) -> str | None:
    """The W3C trace id the task's messages carry, when tracing put one there."""
    for env in envelopes:
        parts = env.trace.traceparent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
            return parts[1]
    return None
