"""`python -m synod_services.researcher` / `.coder`: a worker service process."""

from __future__ import annotations

from synod.roles.worker.service import WorkerRole, setup_worker
from synod.service.host import service_main


def main(role: WorkerRole) -> None:
    service_main(
        role,
        setup_worker(role),
        f"Synod {role}: takes {role} steps from synod.steps.{role}, calls the model and "
        "publishes StepCompleted or StepFailed to synod.task-events.",
    )
