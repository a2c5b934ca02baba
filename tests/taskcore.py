"""Test helpers that drive a `TaskMachine` through its one interface (step / ready).

`fold` feeds a record of the log; `next_actions` is what `ready()` asks for
beyond forwarding logged records (those are checked where forwarding is the
point); `hedges` and `overdue` tell the machine the time first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from synod.core.task import Forward, GrantLease, Logged, Publish, TaskMachine, Tick
from synod.wire import Envelope, StepRequested, TaskFailed
from synod.wire.messages import StepCancelled


def fold(machine: TaskMachine, envelope: Envelope[Any]) -> bool:
    """Fold one record of the task's log (as a rebuild does: nothing to forward)."""
    return machine.step(Logged(envelope, replayed=True))


def next_actions(machine: TaskMachine) -> list[Any]:
    """What the machine decides now: its ready actions other than forwards and grants."""
    return [a for a in machine.ready().actions if not isinstance(a, Forward | GrantLease)]


def decided(machine: TaskMachine) -> list[Any]:
    """The decisions without cancels (what a test of dispatch or voting looks at)."""
    return [
        a
        for a in next_actions(machine)
        if not (isinstance(a, Publish) and isinstance(a.body, StepCancelled))
    ]


def cancels(machine: TaskMachine) -> list[Publish]:
    return [
        a
        for a in next_actions(machine)
        if isinstance(a, Publish) and isinstance(a.body, StepCancelled)
    ]


def hedges(machine: TaskMachine, now: datetime) -> list[Publish]:
    """Tell the machine the time; the hedges it asks for then."""
    machine.step(Tick(now))
    return [
        a
        for a in next_actions(machine)
        if isinstance(a, Publish)
        and isinstance(a.body, StepRequested)
        and a.body.prompt_variant == "hedge"
    ]


def overdue(machine: TaskMachine, now: datetime) -> Publish | None:
    """Tell the machine the time; the TaskFailed it publishes for its deadline, if any."""
    machine.step(Tick(now))
    failed = [
        a
        for a in next_actions(machine)
        if isinstance(a, Publish)
        and isinstance(a.body, TaskFailed)
        and a.body.error_class == "budget"
    ]
    return failed[0] if failed else None
