"""A task nobody can work on still ends: its own deadline fails it, with the reason."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from synod.localkafka import free_port
from synod.localrun import LocalRun
from synod.transport.topics import RESULTS, TASKS, topic_name
from synod.wire import Codec, TaskFailed

pytestmark = pytest.mark.e2e


async def test_a_task_with_no_worker_for_its_steps_fails_at_its_deadline(
    kafka: Any, tmp_path: Path
) -> None:
    os.environ["SYNOD_LLM_BACKEND"] = "sim"
    run = LocalRun(
        bootstrap=kafka.bootstrap,
        prefix=f"deadline{uuid.uuid4().hex[:6]}.",
        run_dir=tmp_path,
        gateway_port=free_port(),
        # No researcher and no coder: every step waits forever.
        replicas={"consensus": 1, "planner": 1, "researcher": 0, "coder": 0, "reviewer": 1},
    )
    try:
        await run.start()
        await run.wait_ready()
        producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap)
        await producer.start()
        task = {"task_id": "stranded", "goal": "nobody will do this", "deadline_s": 3}
        await producer.send_and_wait(
            topic_name(TASKS, run.prefix), json.dumps(task).encode(), key=b"stranded"
        )
        await producer.stop()
        consumer = AIOKafkaConsumer(
            topic_name(RESULTS, run.prefix),
            bootstrap_servers=run.bootstrap,
            auto_offset_reset="earliest",
            group_id=uuid.uuid4().hex,
        )
        await consumer.start()
        outcome = None
        deadline = time.monotonic() + 60
        while outcome is None and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for record in batch:
                    outcome = Codec().decode(record.value).body
        await consumer.stop()
        assert isinstance(outcome, TaskFailed), outcome
        assert outcome.error_class == "budget"
        assert "deadline of 3 s passed while waiting for steps" in outcome.reason
    finally:
        run.stop()
        os.environ.pop("SYNOD_LLM_BACKEND", None)
