"""`synod chaos` against a local team: kills and pauses, a provider outage, a broker restart.

The team is a LocalRun with its watcher on (a killed child is started again,
as under `synod up`), its workers' model calls routed to the fake Messages API
of synod.dev.fakeprovider. One team takes three scenarios in turn, so it
starts once: `mixed` for 8 s (kills and pauses of processes chosen by the
seed), `provider` (the fake API answers 529 for 3-8 s), `partition` and
`slow-link` (a zone's toxiproxy cut or slowed; a reviewer and a researcher
bootstrap through zones), and with SYNOD_TEST_BROKER_RESTART=1
(`make test-chaos-restart`) `broker-restart` (the session's broker stopped and
started again on its port and data). Each waits
for every outcome and checks the whole log; the test ends with `synod check`.
Prints the reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.localteam import assert_log_checks, environment

from synod.dev.chaos import ChaosError, run_chaos
from synod.dev.fakeprovider import FakeMessagesAPI, worker_answer
from synod.dev.localkafka import free_port
from synod.dev.localrun import LocalRun
from synod.dev.netfaults import NetFaults

pytestmark = pytest.mark.timeout(600)


def _print(report_doc: dict[str, Any]) -> None:
    print("\n" + json.dumps({k: v for k, v in report_doc.items() if k != "check_text"}))


def _assert_clean(doc: dict[str, Any], kind: str) -> None:
    assert [f["kind"] for f in doc["faults"]][:1] == [kind], doc["faults"]
    assert doc["tasks"] >= 3, doc
    assert doc["lost"] == 0, doc
    assert doc["check_ok"], doc["check_text"]


async def test_kills_pauses_a_provider_outage_and_a_broker_restart_lose_nothing(
    kafka: Any, netfaults: NetFaults, tmp_path: Path
) -> None:
    provider = FakeMessagesAPI()
    provider.responder = worker_answer
    await provider.start()
    run = LocalRun(
        bootstrap=kafka.bootstrap,
        prefix=f"chaos{uuid.uuid4().hex[:6]}.",
        run_dir=tmp_path,
        gateway_port=free_port(),
        replicas={"consensus": 2, "planner": 2, "researcher": 2, "coder": 1, "reviewer": 3},
        # Two instances reach the broker through zones' proxies, for partition and slow-link.
        bootstraps={
            "reviewer-1": netfaults.bootstrap("z1"),
            "researcher-0": netfaults.bootstrap("z2"),
        },
    )
    env = {
        "SYNOD_LLM_BACKEND": "sim",
        "SYNOD_LLM_SIM_LATENCY": "fixed:0.3",
        "ANTHROPIC_API_KEY": "sk-ant-chaos",
        "ANTHROPIC_BASE_URL": provider.url,
        "SYNOD_MODEL_RESEARCHER": "anthropic:claude-haiku-4-5",
        "SYNOD_MODEL_CODER": "anthropic:claude-haiku-4-5",
    }
    stop = asyncio.Event()
    with environment(env):
        try:
            await run.start()
            await run.wait_ready()
            watcher = asyncio.create_task(run.watch(stop))
            mixed = await run_chaos(
                "mixed", 8.0, seed=3, run_dir=tmp_path, settle_s=240.0, faults_every_s=5.0
            )
            _print(mixed.doc)
            assert mixed.faults, "no fault struck"
            # A ballot lost to a kill may park its task for a person (SYNOD_ESCALATE is on
            # by default): counted as escalated, not lost.
            assert mixed.doc["lost"] == 0, mixed.doc
            assert mixed.doc["check_ok"], mixed.doc["check_text"]

            served = len(provider.requests)
            assert served > 0, "the workers' calls did not reach the fake provider"
            outage = await run_chaos(
                "provider", 4.0, seed=4, run_dir=tmp_path, settle_s=240.0, faults_every_s=20.0
            )
            _print(outage.doc)
            _assert_clean(outage.doc, "provider")
            assert provider.refused_in_outage > 0, "no call met the outage"

            for kind, seed in (("partition", 6), ("slow-link", 7)):
                tcp = await run_chaos(
                    kind,
                    4.0,
                    seed=seed,
                    run_dir=tmp_path,
                    settle_s=240.0,
                    faults_every_s=20.0,
                    toxiproxy=netfaults.api_url,
                )
                _print(tcp.doc)
                _assert_clean(tcp.doc, kind)

            # It restarts the session's broker under every later test, and takes ~45 s:
            # `make test-chaos-restart`, not `make test`.
            if os.environ.get("SYNOD_TEST_BROKER_RESTART") and kafka.run_dir is not None:
                restart = await run_chaos(
                    "broker-restart",
                    4.0,
                    seed=5,
                    run_dir=tmp_path,
                    settle_s=240.0,
                    faults_every_s=20.0,
                    broker_dir=kafka.run_dir,
                )
                _print(restart.doc)
                _assert_clean(restart.doc, "broker-restart")
            await assert_log_checks(run)
        finally:
            stop.set()
            run.stop()
            await provider.stop()
    await watcher


async def test_tcp_scenarios_need_the_zones_proxy_and_a_team(tmp_path: Path) -> None:
    with pytest.raises(ChaosError, match="no running team"):
        await run_chaos("kill", 5.0, seed=1, run_dir=tmp_path)


async def test_a_provider_outage_needs_the_fake_and_a_restart_needs_our_own_broker(
    tmp_path: Path,
) -> None:
    (tmp_path / "processes.json").write_text(
        json.dumps({"bootstrap": "127.0.0.1:9", "prefix": "x.", "broker_dir": None, "children": []})
    )
    unset = {"ANTHROPIC_BASE_URL": "", "SYNOD_CHAOS_PROVIDER_URL": ""}
    with environment(unset), pytest.raises(ChaosError, match="fakeprovider"):
        await run_chaos("provider", 5.0, seed=1, run_dir=tmp_path)
    with pytest.raises(ChaosError, match="does not answer"):
        await run_chaos(
            "provider",
            5.0,
            seed=1,
            run_dir=tmp_path,
            provider_url=f"http://127.0.0.1:{free_port()}",
        )
    with environment({"SYNOD_CHAOS_TOXIPROXY": ""}), pytest.raises(ChaosError, match="--toxiproxy"):
        await run_chaos("partition", 5.0, seed=1, run_dir=tmp_path)
    with pytest.raises(ChaosError, match="no toxiproxy API"):
        await run_chaos(
            "slow-link", 5.0, seed=1, run_dir=tmp_path, toxiproxy=f"http://127.0.0.1:{free_port()}"
        )
    with pytest.raises(ChaosError, match="--broker-dir"):
        await run_chaos("broker-restart", 5.0, seed=1, run_dir=tmp_path)
    with pytest.raises(ChaosError, match="no running broker"):
        await run_chaos("broker-restart", 5.0, seed=1, run_dir=tmp_path, broker_dir=tmp_path)
