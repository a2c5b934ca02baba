"""The task view shows the consistency and the blackboard: facts, conflicts, reconciled."""

from __future__ import annotations

from typing import Any

from synod.core.blackboard import RECONCILE_STEP
from synod.core.taskview import TaskView
from synod.wire import Envelope, Sender, StepCompleted, TaskSubmitted
from synod.wire.messages import FactPublished

PLANNER = Sender(role="planner", instance="planner-0")
RESEARCHER = Sender(role="researcher", instance="researcher-0")


def env(body: Any, sender: Sender = RESEARCHER) -> Envelope[Any]:
    return Envelope.new(body, sender=sender, task_id="t-1")


def fact(fid: str, value: str, observed: list[str] | None = None) -> Envelope[Any]:
    body = FactPublished(
        fact_id=fid, step_id="r", key="approach", value=value, observed=observed or []
    )
    return env(body)


def test_the_status_names_the_consistency_and_the_board_as_it_stands() -> None:
    view = TaskView("t-1")
    view.apply(env(TaskSubmitted(goal="g", consistency="eventual"), PLANNER), 0)
    assert view.status().consistency == "eventual"
    assert view.status().blackboard is None  # no fact yet
    for i, record in enumerate([fact("f1", "a"), fact("f2", "b")], 1):
        view.apply(record, i)
    board = view.status().blackboard
    assert board is not None
    assert (board.facts, board.published, board.conflicts) == (2, 2, ["approach"])
    assert board.reconciled is False
    view.apply(fact("f3", "b", ["f1", "f2"]), 3)
    view.apply(env(StepCompleted(step_id=RECONCILE_STEP)), 4)
    board = view.status().blackboard
    assert board is not None
    assert (board.facts, board.conflicts, board.values) == (1, [], {"approach": "b"})
    assert board.reconciled is True
    assert view.to_json()["blackboard"]["values"] == {"approach": "b"}
