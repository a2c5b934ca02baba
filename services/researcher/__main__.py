from synod.agents.worker import setup_worker
from synod.service.runtime import service_main

service_main(
    "researcher",
    setup_worker("researcher"),
    "Synod researcher: takes researcher steps from synod.steps.researcher, calls the model and "
    "publishes StepCompleted or StepFailed to synod.task-events.",
)
