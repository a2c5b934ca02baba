"""Each step's record names the model that served it and how that model was chosen:
the worker passes the step's kind and the task's routing labels to the backend and puts
the backend's ModelRoute on StepCompleted / StepFailed. The sim backend, no broker.
"""

from __future__ import annotations

from typing import Any

from synod.core.resilience.registry import BREAKERS
from synod.llm import LLMSettings, select_backend
from synod.roles.worker.service import Worker
from synod.service.host import ServiceContext, ServiceSettings
from synod.settings import KafkaSettings
from synod.transport import Received
from synod.transport.dispatcher import RawRecord
from synod.wire import Envelope, Sender, StepCompleted, StepFailed, StepRequested


def step(step_id: str, labels: dict[str, str]) -> Received:
    body = StepRequested(
        step_id=step_id, role="coder", title="t", instructions="i", deadline_s=5, labels=labels
    )
    env = Envelope.new(body, sender=Sender(role="planner", instance="p"), task_id="task-1")
    record = RawRecord(topic="synod.steps.coder", partition=0, offset=0, key=None, value=b"")
    return Received(env, record)


async def run(worker: Worker, published: list[Envelope[Any]], received: Received) -> Any:
    await worker.handle(received)
    return published.pop().body


async def test_the_step_record_says_which_model_served_and_why() -> None:
    BREAKERS.clear()
    settings = LLMSettings(
        backend="sim",
        sim_latency="fixed:0",
        routing={"coder.merge": "sim:merger"},
        model_coder="sim:coder-model",
    )
    llm = select_backend(settings, notice=lambda line: None)
    ctx = ServiceContext("coder", KafkaSettings(), ServiceSettings(instance="c-1"))
    published: list[Envelope[Any]] = []

    async def capture(spec: Any, envelope: Envelope[Any]) -> None:
        published.append(envelope)

    ctx.publish = capture  # type: ignore[method-assign]
    worker = Worker(ctx, "coder", llm)
    plain = await run(worker, published, step("s1", {}))
    merge = await run(worker, published, step("merge:app.py", {}))
    labelled = await run(worker, published, step("s2", {"model.coder": "sim:from-label"}))
    bad = await run(worker, published, step("s3", {"model.coder": "openai:gpt-4.1"}))
    assert isinstance(plain, StepCompleted)
    assert isinstance(merge, StepCompleted)
    assert isinstance(labelled, StepCompleted)
    assert (plain.route.provider, plain.route.model, plain.route.source) == (
        "sim",
        "coder-model",
        "SYNOD_MODEL_CODER",
    )
    assert (merge.route.model, merge.route.source) == ("merger", "SYNOD_LLM_ROUTING coder.merge")
    assert (labelled.route.model, labelled.route.source) == ("from-label", "label model.coder")
    # A label routing to a provider this service has no backend for fails the step
    # permanently, saying why.
    assert isinstance(bad, StepFailed)
    assert (bad.error_class, bad.reason) == ("permanent", "bad_request")
    assert "no openai backend" in bad.error
    BREAKERS.clear()
