"""A task nobody can work on still ends: its own deadline fails it, with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.localteam import assert_log_checks, local_team, outcomes_by_task, read_topic, send_goals

from synod.transport.topics import RESULTS
from synod.wire import Codec, TaskFailed


async def test_a_task_with_no_worker_for_its_steps_fails_at_its_deadline(
    kafka: Any, tmp_path: Path
) -> None:
    # No researcher and no coder: every step waits forever.
    replicas = {"consensus": 1, "planner": 1, "researcher": 0, "coder": 0, "reviewer": 1}
    async with local_team(kafka.bootstrap, tmp_path, "deadline", replicas) as run:
        await send_goals(run, {"stranded": "nobody will do this"}, deadline_s=3)
        records = await read_topic(run, RESULTS, lambda rs: "stranded" in outcomes_by_task(rs), 60)
        await assert_log_checks(run)
    outcome = Codec().decode(records[-1].value).body
    assert isinstance(outcome, TaskFailed), outcome
    assert outcome.error_class == "budget"
    assert "deadline of 3 s passed while waiting for steps" in outcome.reason
