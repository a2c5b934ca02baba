"""`synod chaos mixed` against a local team: kills and pauses under load, nothing lost.

The team is a LocalRun with its watcher on (a killed child is started again,
as under `synod up`); the chaos run reads the team's processes.json, submits
tasks for 20 s while it kills and pauses processes chosen by its seed, waits
for every outcome, and checks the whole log. Prints the report.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.localteam import assert_log_checks, environment

from synod.dev.chaos import ChaosError, run_chaos
from synod.dev.localkafka import free_port
from synod.dev.localrun import LocalRun

pytestmark = pytest.mark.timeout(600)


async def test_a_short_mixed_scenario_loses_nothing_and_checks_clean(
    kafka: Any, tmp_path: Path
) -> None:
    run = LocalRun(
        bootstrap=kafka.bootstrap,
        prefix=f"chaos{uuid.uuid4().hex[:6]}.",
        run_dir=tmp_path,
        gateway_port=free_port(),
        replicas={"consensus": 2, "planner": 2, "researcher": 2, "coder": 1, "reviewer": 3},
    )
    stop = asyncio.Event()
    with environment({"SYNOD_LLM_BACKEND": "sim", "SYNOD_LLM_SIM_LATENCY": "fixed:0.3"}):
        try:
            await run.start()
            await run.wait_ready()
            watcher = asyncio.create_task(run.watch(stop))
            report = await run_chaos(
                "mixed",
                20.0,
                seed=3,
                run_dir=tmp_path,
                rate_per_s=1.0,
                settle_s=240.0,
                faults_every_s=5.0,
            )
            print("\n" + json.dumps({k: v for k, v in report.doc.items() if k != "check_text"}))
            assert report.faults, "no fault struck"
            assert report.doc["tasks"] >= 10
            assert report.doc["lost"] == 0, report.doc
            assert report.doc["check_ok"], report.doc["check_text"]
            await assert_log_checks(run)
        finally:
            stop.set()
            run.stop()
    await watcher


async def test_tcp_scenarios_name_the_missing_proxy_instead_of_faking_it(tmp_path: Path) -> None:
    with pytest.raises(ChaosError, match="proxies"):
        await run_chaos("partition", 5.0, seed=1, run_dir=tmp_path)
    with pytest.raises(ChaosError, match="no running team"):
        await run_chaos("kill", 5.0, seed=1, run_dir=tmp_path)
