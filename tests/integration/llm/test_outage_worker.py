"""The provider outage through a real researcher process on the real broker.

The fake Messages API answers 529 for the primary model for 30 seconds while
the fallback model answers normally. The test publishes StepRequested records
to synod.steps.researcher before, during and after the outage; a real
`python -m synod_services.researcher` process (the real SDK, over real HTTP)
handles them and publishes StepCompleted / StepFailed. A transient StepFailed
is published again with the next attempt number, which is what the retry
topics do (another branch builds those). The worker's heartbeats are read to
see its breaker from outside.

Asserts counts and states only: the breaker is seen open in a heartbeat and
closed again at the end, steps were served by the fallback during the outage
and by the primary after it, and every step completed exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from synod.transport import Publisher
from synod.transport.admin import ensure_topics
from synod.transport.topics import HEARTBEATS, STEPS_RESEARCHER, TASK_EVENTS, topic_name
from synod.wire import Codec, Envelope, Heartbeat, Sender, StepCompleted, StepFailed, StepRequested

PRIMARY, FALLBACK = "claude-sonnet-5-5", "claude-haiku-4-5"
KEY = f"anthropic/{PRIMARY}"
OUTAGE_S = float(os.environ.get("SYNOD_TEST_OUTAGE_S", "30"))
BEFORE_S = 3.0
STEP_EVERY_S = 0.2
NOTES = '{"summary": "fine", "findings": ["one"]}'
CODEC = Codec()
PLANNER = Sender(role="planner", instance="outage-test")


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "synod_services.researcher"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


@pytest.mark.timeout(OUTAGE_S + 240)
async def test_outage_through_a_worker_process(kafka: Any, fake_api: Any, tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    outage = {"start": float("inf"), "end": float("inf")}
    seen: Counter[tuple[str, str, str]] = Counter()

    def phase(at: float) -> str:
        if at < outage["start"]:
            return "before"
        return "during" if at < outage["end"] else "after"

    def respond(request: Any) -> Any:
        model, now = request.body["model"], loop.time()
        if model == PRIMARY and phase(now) == "during":
            seen[(model, "529", phase(now))] += 1
            return fake_api.error_reply(529, "overloaded_error", "Overloaded")
        seen[(model, "200", phase(now))] += 1
        return fake_api.message_reply(NOTES, model=model)

    fake_api.responder = respond
    prefix = f"outage{uuid.uuid4().hex[:6]}."
    await ensure_topics(kafka.bootstrap, prefix=prefix, partitions=2)
    env = dict(os.environ)
    env.update(
        SYNOD_BOOTSTRAP=kafka.bootstrap,
        SYNOD_TOPIC_PREFIX=prefix,
        SYNOD_INSTANCE="researcher-outage",
        SYNOD_HEALTH_PORT="-1",
        SYNOD_LLM_BACKEND="anthropic",
        ANTHROPIC_API_KEY="sk-test",
        ANTHROPIC_BASE_URL=fake_api.url,
        SYNOD_LLM_MODEL=PRIMARY,
        SYNOD_LLM_FALLBACK=FALLBACK,
        SYNOD_LLM_MAX_RETRIES="0",
        SYNOD_LLM_BREAKER_WINDOW_S="10",
        SYNOD_LLM_BREAKER_MIN_CALLS="5",
        SYNOD_LLM_BREAKER_OPEN_FOR_S="3",
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "researcher.log"
    proc = start_worker(env, log_path)
    publisher = Publisher(kafka.bootstrap, client_id="outage-test")
    reader = AIOKafkaConsumer(
        topic_name(TASK_EVENTS, prefix),
        topic_name(HEARTBEATS, prefix),
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        group_id=f"check-{uuid.uuid4().hex}",
    )
    completed: dict[str, set[str]] = {}  # task -> message ids of its StepCompleted
    served: Counter[tuple[str, str]] = Counter()  # (phase submitted, model)
    submitted_in: dict[str, str] = {}
    failures: Counter[str] = Counter()
    states: list[tuple[float, str]] = []  # (loop time, primary's state) from heartbeats
    steps_out: list[str] = []
    retries: list[asyncio.Task[None]] = []

    async def submit(task: str, attempt: int) -> None:
        body = StepRequested(
            step_id="s1", role="researcher", title="notes", instructions="notes", deadline_s=30
        )
        envelope = Envelope.new(body, sender=PLANNER, task_id=task, attempt=attempt)
        await publisher.publish(topic_name(STEPS_RESEARCHER, prefix), envelope)

    async def retry_later(task: str, attempt: int) -> None:
        await asyncio.sleep(0.5)  # a retry topic's delay
        await submit(task, attempt)

    async def read() -> None:
        while True:
            for batch in (await reader.getmany(timeout_ms=200)).values():
                for record in batch:
                    env = CODEC.decode(record.value)
                    body = env.body
                    if isinstance(body, Heartbeat) and KEY in body.breakers:
                        states.append((loop.time(), body.breakers[KEY]))
                    elif isinstance(body, StepCompleted):
                        task = env.task_id or ""
                        if env.message_id not in completed.setdefault(task, set()):
                            served[(submitted_in[task], body.usage.model)] += 1
                        completed[task].add(env.message_id)
                    elif isinstance(body, StepFailed):
                        failures[f"{body.error_class}:{body.reason}"] += 1
                        if body.error_class == "transient":
                            retries.append(
                                asyncio.create_task(retry_later(env.task_id or "", env.attempt + 1))
                            )

    def primary_state() -> str | None:
        return states[-1][1] if states else None

    await publisher.start()
    await reader.start()
    reading = asyncio.create_task(read())
    try:
        # The worker is up when its consumer group has the work topic: a first
        # step completes (bounded wait).
        steps_out.append("warmup")
        submitted_in["warmup"] = "before"
        await submit("warmup", 0)
        for _ in range(600):
            if "warmup" in completed:
                break
            assert proc.poll() is None, log_path.read_text()[-3000:]
            await asyncio.sleep(0.1)
        assert "warmup" in completed, log_path.read_text()[-3000:]

        t0 = loop.time()
        outage.update(start=t0 + BEFORE_S, end=t0 + BEFORE_S + OUTAGE_S)
        i = 0
        give_up = outage["end"] + 90
        while loop.time() < give_up:
            after = loop.time() >= outage["end"]
            if after and primary_state() == "closed" and served[("after", PRIMARY)] >= 10:
                break
            task = f"task-{i}"
            steps_out.append(task)
            submitted_in[task] = phase(loop.time())
            await submit(task, 0)
            i += 1
            await asyncio.sleep(STEP_EVERY_S)
        for _ in range(900):
            if len(completed) == len(steps_out):
                break
            await asyncio.sleep(0.1)
        # One more heartbeat round, so the last state is read after the last step.
        heard = len(states)
        for _ in range(100):
            if len(states) > heard + 1:
                break
            await asyncio.sleep(0.05)
    finally:
        reading.cancel()
        for job in retries:
            job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await reader.stop()
        await publisher.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    print(f"\n--- provider outage through a worker process ({len(steps_out)} steps) ---")
    print(f"  outage: t=+{BEFORE_S:g}s .. +{BEFORE_S + OUTAGE_S:g}s")
    last = None
    for at, state in states:
        if state != last:
            print(f"  t=+{at - t0:7.2f}s  heartbeat: {KEY} {state}")
            last = state
    for (ph, model), n in sorted(served.items()):
        print(f"  steps {ph:7s} served by {model:20s} {n}")
    for (model, status, ph), n in sorted(seen.items()):
        print(f"  server saw {model:20s} {status} {ph:7s} {n}")
    print(f"  StepFailed by class:reason: {dict(failures)}")

    assert proc.returncode == 0, log_path.read_text()[-3000:]
    # Every step completed, exactly once.
    assert set(completed) == set(steps_out)
    assert all(len(ids) == 1 for ids in completed.values())
    # Failures, if any, were transient (retried), never permanent.
    assert not [f for f in failures if not f.startswith("transient:")]
    # The worker's heartbeats showed the breaker open, and closed at the end.
    assert "open" in {s for _, s in states}
    assert primary_state() == "closed"
    # The fallback served during the outage, the primary never did; it did after.
    assert served[("during", FALLBACK)] > 0
    assert served[("during", PRIMARY)] == 0
    assert served[("after", PRIMARY)] >= 10
    during = sum(n for (p, _), n in served.items() if p == "during")
    assert seen[(PRIMARY, "529", "during")] < during / 2
