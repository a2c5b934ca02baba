"""Central and claim teams: each of N slots runs one step at a time, of its own choosing.

The order and the dealing are `synod.core.plan.teampolicy`'s, the same the
simulator's central and claim engines use.
"""

from __future__ import annotations

from synod.core.plan.teampolicy import TeamMode, central_lists, central_next
from synod.core.task import knowledge
from synod.core.task.actions import Publish
from synod.core.task.records import publish
from synod.core.task.state import TaskState
from synod.core.task.steps import attempt_due, step_request
from synod.wire.messages import StepClaimed


def dispatch_to_slots(s: TaskState, mode: TeamMode, n: int) -> list[Publish]:
    """A claim is logged (StepClaimed, blocked or not) before the slot's request,
    so the run's report can count blocked claims from the log."""
    assert s.dag is not None
    actions: list[Publish] = []
    if mode == "central":
        picks = central_next(s.dag, central_lists(s.dag, n), s.completed)
    else:
        assert s.shared_list is not None
        for claim in s.shared_list.claims:
            if claim.step_id not in s.claims_logged:
                body = StepClaimed(
                    step_id=claim.step_id, agent=claim.agent, blocked_on=list(claim.blocked_on)
                )
                actions.append(publish(s, body, f"claim/{claim.step_id}"))
        picks = s.shared_list.runnable(s.completed)
    for slot, step_id in picks:
        if not knowledge.knowledge_ready(s, step_id):
            continue  # strong: the slot waits until the facts it may read are decided
        attempt = attempt_due(s, step_id)
        if attempt is not None:
            actions.append(step_request(s, step_id, attempt, slot))
    return actions
