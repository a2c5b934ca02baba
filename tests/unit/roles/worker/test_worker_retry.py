"""The worker's retry path without a broker: what it parks, reports and dead-letters.

A fake model fails as told; the worker's publishes, its raw retry-topic records
and its dead letters are captured. The clock is a number the test moves.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from synod.core.resilience.retrytopics import RetryTiers
from synod.llm import LLMRequest, LLMResponse
from synod.llm.errors import LLMPermanentError, LLMTransientError
from synod.roles.metrics import STEP_RETRIES, STEP_RETRIES_EXHAUSTED
from synod.roles.worker.service import (
    H_DUE_MS,
    H_FIRST_FAILED_MS,
    H_OFFSET,
    H_PARTITION,
    H_REASON,
    H_RETRY,
    H_TOPIC,
    RETRY_CALL_STRIDE,
    Worker,
)
from synod.service.host import ServiceContext, ServiceSettings
from synod.settings import KafkaSettings
from synod.transport import Received
from synod.transport.dispatcher import RawRecord
from synod.wire import Codec, Envelope, Sender, StepCompleted, StepFailed, StepRequested, Usage
from synod.wire.messages import StepRetrying

CODEC = Codec()
T0 = 1_800_000_000.0
TIERS = RetryTiers(delays_s=(1.0, 5.0, 20.0), base_s=2.0)


class Model:
    """Fails each call with the next error in `errors`, then answers."""

    name = "fake"

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls.append(request)
        if self.errors:
            raise self.errors.pop(0)
        return LLMResponse(text="notes", parsed=None, usage=Usage(calls=1), model="m", latency_s=0)

    async def aclose(self) -> None:
        return None


class Rig:
    def __init__(self, model: Model, tiers: RetryTiers | None = TIERS) -> None:
        self.now = T0
        ctx = ServiceContext("researcher", KafkaSettings(), ServiceSettings(instance="r-1"))
        self.logged: list[Envelope[Any]] = []
        self.parked: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        self.letters: list[tuple[RawRecord, str, dict[str, Any]]] = []

        async def publish(spec: Any, envelope: Envelope[Any]) -> None:
            self.logged.append(envelope)

        async def publish_raw(
            topic: str, value: bytes, key: bytes | None = None, headers: Any = None
        ) -> None:
            self.parked.append((topic, value, key, list(headers or [])))

        async def dead_letter(
            record: RawRecord, reason: str, message: str, error_class: str, **kw: Any
        ) -> None:
            self.letters.append((record, reason, kw))

        ctx.publish = publish  # type: ignore[method-assign]
        ctx.publisher.publish_raw = publish_raw  # type: ignore[method-assign]
        self.worker = Worker(
            ctx, "researcher", model, tiers, rng=random.Random(7), clock=lambda: self.now
        )
        self.worker.dead_letter = dead_letter  # type: ignore[assignment]

    async def first(self, attempt: int = 0) -> Received:
        body = StepRequested(step_id="s1", role="researcher", title="t", deadline_s=5)
        env = Envelope.new(
            body, sender=Sender(role="planner", instance="p"), task_id="t1", attempt=attempt
        )
        record = RawRecord(
            topic="synod.steps.researcher",
            partition=4,
            offset=77,
            key=b"t1/s1",
            value=CODEC.encode(env),
            headers=(("message-id", env.message_id.encode()),),
            timestamp_ms=int(T0 * 1000),
        )
        await self.worker.handle(Received(env, record))
        return Received(env, record)

    async def again(self) -> Received:
        """Deliver the newest parked record, as the retry consumer would, once due."""
        topic, value, key, headers = self.parked[-1]
        due_ms = int(dict(headers)[H_DUE_MS].decode())
        self.now = due_ms / 1000  # due now: the worker does not wait
        record = RawRecord(topic, 0, len(self.parked), key, value, tuple(headers), due_ms)
        msg = Received(CODEC.decode(value), record)
        await self.worker.handle(msg)
        return msg


def overloaded(**kw: Any) -> LLMTransientError:
    return LLMTransientError("529 overloaded", reason="overloaded", **kw)


async def test_a_transient_failure_is_parked_not_reported() -> None:
    rig = Rig(Model(overloaded()))
    msg = await rig.first()
    [retrying] = rig.logged
    assert isinstance(retrying.body, StepRetrying)
    assert (retrying.body.retry, retrying.body.reason) == (1, "overloaded")
    assert retrying.causes == [msg.envelope.message_id]
    [(topic, value, key, headers)] = rig.parked
    assert topic == "synod.retry.researcher.1"
    assert (value, key) == (msg.record.value, msg.record.key)  # the original bytes
    h = {k: v.decode() for k, v in headers}
    assert h["message-id"] == msg.envelope.message_id  # the original headers stay
    assert (h[H_RETRY], h[H_TOPIC], h[H_PARTITION], h[H_OFFSET]) == (
        "1",
        "synod.steps.researcher",
        "4",
        "77",
    )
    assert h[H_REASON] == "overloaded"
    assert int(h[H_FIRST_FAILED_MS]) == int(T0 * 1000)
    due = int(h[H_DUE_MS]) / 1000
    assert T0 <= due <= T0 + TIERS.ceiling_s(1) + 0.001
    assert retrying.body.due_at == datetime.fromtimestamp(int(h[H_DUE_MS]) / 1000, UTC)
    assert rig.letters == []


async def test_twice_transient_then_fine_completes_once_after_retry_2() -> None:
    model = Model(overloaded(), overloaded())
    rig = Rig(model)
    first = await rig.first()
    await rig.again()
    await rig.again()
    assert [p[0] for p in rig.parked] == ["synod.retry.researcher.1", "synod.retry.researcher.2"]
    types = [type(e.body).__name__ for e in rig.logged]
    assert types == ["StepRetrying", "StepRetrying", "StepCompleted"]
    done = rig.logged[-1]
    assert done.causes == [first.envelope.message_id]
    assert done.attempt == 0
    # Each run is a new model call (a new sample), none another planner attempt's.
    assert [c.attempt for c in model.calls] == [0, RETRY_CALL_STRIDE, 2 * RETRY_CALL_STRIDE]
    assert rig.letters == []


async def test_after_the_last_tier_the_step_fails_and_the_original_is_dead_lettered() -> None:
    before = STEP_RETRIES_EXHAUSTED.labels("researcher", "overloaded")._value.get()
    rig = Rig(Model(*[overloaded() for _ in range(4)]))
    first = await rig.first()
    for _ in range(3):
        await rig.again()
    assert len(rig.parked) == 3
    types = [type(e.body).__name__ for e in rig.logged]
    assert types == ["StepRetrying"] * 3 + ["StepFailed"]
    failed = rig.logged[-1].body
    assert isinstance(failed, StepFailed)
    assert (failed.error_class, failed.reason) == ("transient", "overloaded")
    [(record, reason, kw)] = rig.letters
    assert (record.topic, record.partition, record.offset) == ("synod.steps.researcher", 4, 77)
    assert (record.key, record.value) == (first.record.key, first.record.value)
    assert all(not k.startswith("synod-") for k, _ in record.headers)  # replayable afresh
    assert reason == "overloaded"
    assert kw == {"attempts": 4, "first_failed_at": datetime.fromtimestamp(T0, UTC)}
    after = STEP_RETRIES_EXHAUSTED.labels("researcher", "overloaded")._value.get()
    assert after == before + 1


async def test_a_permanent_failure_is_reported_at_once_and_not_dead_lettered() -> None:
    rig = Rig(Model(LLMPermanentError("400 bad request", reason="bad_request")))
    await rig.first()
    [failed] = rig.logged
    assert isinstance(failed.body, StepFailed)
    assert failed.body.error_class == "permanent"
    assert rig.parked == []
    assert rig.letters == []


async def test_circuit_open_waits_at_least_the_breakers_remaining_time() -> None:
    before = STEP_RETRIES.labels("researcher", "1", "circuit_open")._value.get()
    error = LLMTransientError("all open", reason="circuit_open", retry_after_s=12.5)
    rig = Rig(Model(error))
    await rig.first()
    [retrying] = rig.logged
    assert isinstance(retrying.body, StepRetrying)
    assert retrying.body.due_at.timestamp() >= T0 + 12.5 - 0.001  # tier 1 alone caps at 1 s
    assert STEP_RETRIES.labels("researcher", "1", "circuit_open")._value.get() == before + 1


async def test_the_reported_failure_carries_the_breakers_retry_after() -> None:
    error = LLMTransientError("all open", reason="circuit_open", retry_after_s=3.0)
    rig = Rig(Model(error), tiers=None)  # no retry topics: reported at once
    await rig.first()
    [failed] = rig.logged
    assert isinstance(failed.body, StepFailed)
    assert (failed.body.reason, failed.body.retry_after_s) == ("circuit_open", 3.0)


async def test_a_parked_record_waits_until_it_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("synod.roles.worker.service.asyncio.sleep", sleep)
    rig = Rig(Model(overloaded()))
    await rig.first()
    topic, value, key, headers = rig.parked[-1]
    due = int(dict(headers)[H_DUE_MS].decode()) / 1000
    rig.now = due - 0.75
    record = RawRecord(topic, 0, 1, key, value, tuple(headers), 0)
    await rig.worker.handle(Received(CODEC.decode(value), record))
    assert slept == [pytest.approx(0.75, abs=0.002)]
    assert isinstance(rig.logged[-1].body, StepCompleted)


async def test_an_open_breaker_parks_the_step_until_it_may_probe_again() -> None:
    """Through the real ResilientBackend: the breaker's remaining open time becomes
    StepFailed.retry_after_s and the floor of the parked step's due time."""
    from synod.core.resilience.breaker import BreakerConfig
    from synod.core.resilience.registry import BreakerBoard
    from synod.llm.resilient import ResilientBackend

    mono = [100.0]
    config = BreakerConfig(min_calls=1, open_for_s=30.0, retry_after_hold_s=None)
    llm = ResilientBackend(
        {"sim": Model(overloaded())},
        "sim",
        breaker=config,
        board=BreakerBoard(),
        clock=lambda: mono[0],
    )
    reported = Rig(llm, tiers=None)  # type: ignore[arg-type]
    await reported.first()  # the failure that opens the breaker
    mono[0] += 10.0  # 20 s of the 30 s open time left
    await reported.first()
    failed = reported.logged[-1].body
    assert isinstance(failed, StepFailed)
    assert (failed.reason, failed.retry_after_s) == ("circuit_open", pytest.approx(20.0))

    parking = Rig(llm)  # type: ignore[arg-type]
    await parking.first()
    [retrying] = parking.logged
    assert isinstance(retrying.body, StepRetrying)
    assert retrying.body.reason == "circuit_open"
    assert retrying.body.due_at.timestamp() >= T0 + 20.0 - 0.001
