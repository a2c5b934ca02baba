from synod.agents.worker import setup_worker
from synod.service.runtime import service_main

service_main(
    "coder",
    setup_worker("coder"),
    "Synod coder: takes coder steps from synod.steps.coder, calls the model and "
    "publishes StepCompleted or StepFailed to synod.task-events.",
)
