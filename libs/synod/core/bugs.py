"""Deliberate bugs for the simulator to find: off unless a test or `synod sim --bug` plants one.

Each name is a real mistake in the real code path it guards (a one-line
`if planted(...)` there), so a seed that finds it shows the simulator catches
that class of bug in the code the services run. Nothing turns one on in a
service: only `plant` does, and `synod.sim` runs plant it for one run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

BUGS = {
    "commit_early": "a consumer counts a record done when it arrives, not when its "
    "handler has finished (synod.transport.offsets)",
    "quorum_minus_one": "a count policy decides with one vote fewer than its quorum "
    "(synod.core.consensus.policies)",
    "outcome_before_writes": "a worker reports a coding step completed before its file "
    "writes are out (synod.core.work)",
    "ack_trusts_the_log": "a planner on the `ack` outbox folds every planner record it "
    "reads back as forwarded already, also one whose copies a predecessor never sent "
    "(synod.core.task.carry.Forwarded)",
}

_planted: set[str] = set()


def planted(name: str) -> bool:
    return name in _planted


@contextmanager
def plant(*names: str) -> Iterator[None]:
    """Turn the named bugs on for the duration of the block."""
    unknown = sorted(set(names) - BUGS.keys())
    if unknown:
        raise ValueError(f"unknown bug(s) {unknown}; known: {sorted(BUGS)}")
    before = set(_planted)
    _planted.update(names)
    try:
        yield
    finally:
        _planted.clear()
        _planted.update(before)
