"""`python -m synod_services.supervisor`: the supervisor service process."""

from __future__ import annotations

from synod.roles.supervisor.service import install
from synod.service.host import ServiceContext, service_main


async def _setup(ctx: ServiceContext) -> None:
    install(ctx)


def main() -> None:
    service_main(
        "supervisor",
        _setup,
        "Synod supervisor: watches synod.heartbeats, synod.task-events and synod.votes; "
        "restarts dead instances through a runtime (SYNOD_SUPERVISOR_RUNTIME=none|local|"
        "kubernetes), reassigns stuck or looping steps (StepReassigned on synod.task-events) "
        "and quarantines repeat hallucinators (QuarantineNotice on synod.supervisor).",
    )
