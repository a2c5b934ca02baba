"""Test helper that drives the supervisor core (`synod.core.supervisor.Supervisor`) as
its service does: one tick a second. Ticks far apart would read as the
supervisor's own pause (its wake rule), not as time passing."""

from __future__ import annotations

from synod.core.supervisor import Action, Supervisor


def run(sup: Supervisor, end: float) -> list[Action]:
    """Tick every second from the last tick to `end`; every action."""
    t = 0.0 if sup.last_tick is None else sup.last_tick + 1.0
    actions: list[Action] = []
    while t <= end:
        actions += sup.tick(t)
        t += 1.0
    return actions
