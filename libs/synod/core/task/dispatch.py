"""Which plan steps to request now: ready steps, critical path first, within the team's room.

This is the one synod-mode scheduler: the planner service runs it on the
task's log, and the team simulator (`synod.core.teamsim`) runs the same
machine in virtual time, so the bench measures what the service does.
"""

from __future__ import annotations

from synod.core.task import knowledge, slots
from synod.core.task.actions import Publish
from synod.core.task.state import TaskState
from synod.core.task.steps import attempt_due, room, step_request


def dispatch(s: TaskState) -> list[Publish]:
    assert s.dag is not None
    mode, n = s.team()
    if mode != "synod" and n is not None:
        return slots.dispatch_to_slots(s, mode, n)
    actions: list[Publish] = []
    # Critical path first: the pool takes requests roughly in the order they are
    # logged, so the log order is the priority.
    rank = s.rank()
    ready = sorted(s.dag.ready(frozenset(s.completed)), key=rank.__getitem__)
    left = room(s)
    for step_id in ready:
        if not knowledge.knowledge_ready(s, step_id):
            continue  # strong: the facts it may read are not all decided yet
        attempt = attempt_due(s, step_id)
        if attempt is None:
            continue
        if left is not None:
            if left <= 0:
                break  # a team of N agents works on at most N attempts at once
            left -= 1
        actions.append(step_request(s, step_id, attempt))
    return actions
