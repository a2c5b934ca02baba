"""`synod status ID --timeline`: a task's events in causal order, with their clocks."""

from __future__ import annotations

from rich.console import Console
from tests.logs import honest

from synod.cli.client import _print_timeline, causal_timeline
from synod.core.taskview import TaskView


def test_a_task_view_prints_its_timeline_in_causal_order() -> None:
    log, _ = honest("t-1")
    view = TaskView("t-1")
    for r in log.records:
        if r.topic == "synod.task-events":
            view.apply(r.envelope, r.offset)
    rows = causal_timeline(view)
    assert rows[0]["type"] == "TaskSubmitted"
    assert rows[-1]["type"] == "TaskCompleted"
    assert [r["depth"] for r in rows] == sorted(r["depth"] for r in rows)
    assert all(r["vclock"] for r in rows)
    console = Console(record=True, width=200)
    _print_timeline(console, view)
    text = console.export_text()
    assert "causal timeline" in text
    assert "planner-0:1" in text
