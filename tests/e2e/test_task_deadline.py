"""A task nobody can work on still ends: its own deadline fails it, with the reason."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.localteam import environment, outcomes_by_task, read_topic, send_goals

from synod.localkafka import free_port
from synod.localrun import LocalRun
from synod.transport.topics import RESULTS
from synod.wire import Codec, TaskFailed

pytestmark = pytest.mark.e2e


async def test_a_task_with_no_worker_for_its_steps_fails_at_its_deadline(
    kafka: Any, tmp_path: Path
) -> None:
    run = LocalRun(
        bootstrap=kafka.bootstrap,
        prefix=f"deadline{uuid.uuid4().hex[:6]}.",
        run_dir=tmp_path,
        gateway_port=free_port(),
        # No researcher and no coder: every step waits forever.
        replicas={"consensus": 1, "planner": 1, "researcher": 0, "coder": 0, "reviewer": 1},
    )
    with environment({"SYNOD_LLM_BACKEND": "sim"}):
        try:
            await run.start()
            await run.wait_ready()
            await send_goals(run, {"stranded": "nobody will do this"}, deadline_s=3)
            records = await read_topic(
                run, RESULTS, lambda rs: "stranded" in outcomes_by_task(rs), 60
            )
        finally:
            run.stop()
    outcome = Codec().decode(records[-1].value).body
    assert isinstance(outcome, TaskFailed), outcome
    assert outcome.error_class == "budget"
    assert "deadline of 3 s passed while waiting for steps" in outcome.reason
