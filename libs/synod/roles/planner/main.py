"""`python -m synod_services.planner`: the planner service process."""

from __future__ import annotations

from synod.roles.planner.service import setup_planner
from synod.service.host import service_main


def main() -> None:
    service_main(
        "planner",
        setup_planner,
        "Synod planner: turns goals into plan DAGs, dispatches ready steps, puts the answer "
        "to the vote and publishes each task's outcome.",
    )
