"""Where a task is in its life: one explicit phase, moved on by the fold.

    NEW -> PLANNING -> RUNNING -> (MERGING ->) VOTING -> DONE
                         ^                      |
                         +----------------------+  a revision, or a looping step redone

The phase is stored, not re-derived by each decision: the fold moves it on
after every record (`settle`), and the machine decides by phase alone.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    NEW = "new"  # nothing folded yet
    PLANNING = "planning"  # submitted; waiting for a plan
    RUNNING = "running"  # steps of the plan are due or out
    MERGING = "merging"  # eventual consistency: merge steps are out
    VOTING = "voting"  # every step done: the answer is (to be) voted on
    DONE = "done"  # TaskCompleted or TaskFailed is in the log


def settle(
    *,
    submitted: bool,
    planned: bool,
    outcome: bool,
    steps_left: bool,
    merging: bool,
) -> Phase:
    """The phase a task's fold leaves it in."""
    if outcome:
        return Phase.DONE
    if not submitted:
        return Phase.NEW
    if not planned:
        return Phase.PLANNING
    if steps_left:
        return Phase.RUNNING
    if merging:
        return Phase.MERGING
    return Phase.VOTING
