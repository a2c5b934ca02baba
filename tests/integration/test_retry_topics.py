"""Retry topics on the real broker, through a real researcher service (`run_service`).

The service is the production wiring (`install_worker`: the work topic's
consumer group and the retry topics' own group, the DLQ publisher, tiers from
SYNOD_RETRY_* settings); only the model is the test's, failing chosen steps:

- `flaky` fails transiently twice (each time saying "retry after 1 s"), then
  answers: it passes synod.retry.researcher.1 and .2 and completes once;
- `doomed` always fails transiently: after the last tier a StepFailed and a
  dead letter of the original request (source offset, attempts = tiers + 1);
- `quick`, published after `flaky` with the same key (so the same partition of
  the work topic), completes before `flaky` does: a parked step blocks nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from synod.llm import LLMRequest, LLMResponse
from synod.llm.errors import LLMTransientError
from synod.roles.worker.service import H_OFFSET, H_RETRY, install_worker
from synod.roles.worker.settings import RetrySettings
from synod.service.host import ServiceContext, run_service
from synod.transport import Publisher
from synod.transport.admin import ensure_topics
from synod.transport.topics import (
    DLQ,
    RETRY_RESEARCHER,
    RETRY_TIERS,
    STEPS_RESEARCHER,
    TASK_EVENTS,
    topic_name,
)
from synod.wire import (
    Codec,
    DeadLetter,
    Envelope,
    Sender,
    StepCompleted,
    StepFailed,
    StepRequested,
    Usage,
)
from synod.wire.messages import StepRetrying

pytestmark = pytest.mark.timeout(180)
CODEC = Codec()
PLANNER = Sender(role="planner", instance="retry-test")
DELAYS = "0.2,0.4,0.8"
TIERS = 3


class ChosenFailures:
    """The test's model: fails `flaky` twice and `doomed` always, answers the rest."""

    name = "chosen"

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls[request.step_id] += 1
        if request.step_id == "flaky" and self.calls["flaky"] <= 2:
            raise LLMTransientError("529 overloaded", reason="overloaded", retry_after_s=1.0)
        if request.step_id == "doomed":
            raise LLMTransientError("connection reset", reason="connection")
        return LLMResponse(
            text=f"notes on {request.step_id}",
            parsed=None,
            usage=Usage(calls=1),
            model="chosen",
            latency_s=0.0,
        )

    async def aclose(self) -> None:
        return None


async def read_until(bootstrap: str, topics: list[str], done: Any, timeout_s: float) -> list[Any]:
    """Records of `topics` from the start until `done(records)` holds (bounded in time)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"check-{uuid.uuid4().hex}",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while not done(records):
            assert time.monotonic() < deadline, f"not done in {timeout_s:.0f} s: {len(records)}"
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_retry_topics_complete_fail_dead_letter_and_never_block(
    kafka: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"retry{uuid.uuid4().hex[:6]}."
    await ensure_topics(kafka.bootstrap, prefix=prefix, partitions=2)
    for name, value in {
        "SYNOD_BOOTSTRAP": kafka.bootstrap,
        "SYNOD_TOPIC_PREFIX": prefix,
        "SYNOD_INSTANCE": "researcher-retry",
        "SYNOD_HEALTH_PORT": "-1",
        "SYNOD_RETRY_DELAYS_S": DELAYS,
        "SYNOD_RETRY_BASE_S": "0.2",
    }.items():
        monkeypatch.setenv(name, value)
    model = ChosenFailures()
    contexts: list[ServiceContext] = []

    async def setup(ctx: ServiceContext) -> None:
        contexts.append(ctx)
        install_worker(ctx, "researcher", model, RetrySettings().tiers(RETRY_TIERS))

    stop = asyncio.Event()
    service = asyncio.create_task(run_service("researcher", setup, stop=stop))
    work = topic_name(STEPS_RESEARCHER, prefix)
    events, dlq = topic_name(TASK_EVENTS, prefix), topic_name(DLQ, prefix)
    sent: dict[str, Envelope[Any]] = {}
    where: dict[str, tuple[int, int]] = {}
    try:
        async with Publisher(kafka.bootstrap, client_id="retry-test") as publisher:
            for step_id, task_id in (("flaky", "t-one"), ("quick", "t-one"), ("doomed", "t-two")):
                body = StepRequested(
                    step_id=step_id, role="researcher", title=step_id, deadline_s=10
                )
                env = Envelope.new(body, sender=PLANNER, task_id=task_id)
                # quick shares flaky's key: same partition, queued right behind it.
                key = b"t-one/flaky" if task_id == "t-one" else b"t-two/doomed"
                meta = await publisher.publish(work, env, key=key)
                sent[step_id], where[step_id] = env, (meta.partition, meta.offset)
        assert where["quick"][0] == where["flaky"][0]

        def outcomes(records: list[Any]) -> dict[str, list[Envelope[Any]]]:
            out: dict[str, list[Envelope[Any]]] = {}
            for r in records:
                e = CODEC.decode(r.value)
                if isinstance(e.body, StepCompleted | StepFailed):
                    out.setdefault(e.body.step_id, []).append(e)
            return out

        log = await read_until(
            kafka.bootstrap,
            [events],
            lambda rs: {"flaky", "quick", "doomed"} <= set(outcomes(rs)),
            90,
        )
        letters = await read_until(kafka.bootstrap, [dlq], lambda rs: len(rs) >= 1, 30)
        parked = await read_until(
            kafka.bootstrap,
            [topic_name(t, prefix) for t in RETRY_RESEARCHER],
            lambda rs: len(rs) >= 2 + TIERS,
            30,
        )
        await asyncio.sleep(1.0)  # let anything extra (a second outcome) arrive, then look
        log = await read_until(kafka.bootstrap, [events], lambda rs: len(rs) >= len(log), 30)
    finally:
        stop.set()
        status = await asyncio.wait_for(service, 60)
    assert status == 0

    envelopes = [CODEC.decode(r.value) for r in sorted(log, key=lambda r: (r.partition, r.offset))]
    done = outcomes(log)
    # flaky: parked in tier 1 and 2, then exactly one StepCompleted.
    [flaky_done] = done["flaky"]
    assert isinstance(flaky_done.body, StepCompleted)
    assert flaky_done.causes == [sent["flaky"].message_id]
    notices = [e.body for e in envelopes if isinstance(e.body, StepRetrying)]
    assert [(n.step_id, n.retry) for n in notices if n.step_id == "flaky"] == [
        ("flaky", 1),
        ("flaky", 2),
    ]
    assert model.calls["flaky"] == 3
    flaky_parked = [
        r for r in parked if CODEC.decode(r.value).message_id == sent["flaky"].message_id
    ]
    assert sorted(r.topic for r in flaky_parked) == [
        topic_name(RETRY_RESEARCHER[0], prefix),
        topic_name(RETRY_RESEARCHER[1], prefix),
    ]
    assert sorted(dict(r.headers)[H_RETRY] for r in flaky_parked) == [b"1", b"2"]
    # quick: queued behind flaky in the same partition, done before it.
    [quick_done] = done["quick"]
    order = [e.message_id for e in envelopes]
    assert order.index(quick_done.message_id) < order.index(flaky_done.message_id)
    # doomed: every tier spent, then StepFailed with the last reason ...
    [doomed_failed] = done["doomed"]
    assert isinstance(doomed_failed.body, StepFailed)
    assert (doomed_failed.body.error_class, doomed_failed.body.reason) == (
        "transient",
        "connection",
    )
    assert model.calls["doomed"] == TIERS + 1
    assert [n.retry for n in notices if n.step_id == "doomed"] == [1, 2, 3]
    doomed_parked = [
        r for r in parked if CODEC.decode(r.value).message_id == sent["doomed"].message_id
    ]
    assert {dict(r.headers)[H_OFFSET] for r in doomed_parked} == {str(where["doomed"][1]).encode()}
    # ... and one dead letter of the original request, with its first source offset.
    [letter] = [CODEC.decode(r.value).body for r in letters]
    assert isinstance(letter, DeadLetter)
    assert (letter.source_topic, letter.partition, letter.offset) == (work, *where["doomed"])
    assert letter.attempts == TIERS + 1
    assert letter.reason == "connection"
    assert letter.first_failed_at is not None
    assert CODEC.decode(letter.value).message_id == sent["doomed"].message_id
    assert not [h for h in letter.headers if h.key.startswith("synod-")]
