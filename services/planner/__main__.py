from synod.agents.planner import setup_planner
from synod.service.runtime import service_main

service_main(
    "planner",
    setup_planner,
    "Synod planner: turns goals into plan DAGs, dispatches ready steps, puts the answer "
    "to the vote and publishes each task's outcome.",
)
