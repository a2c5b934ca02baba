"""The whole team as processes on the 3-broker cluster, 200 tasks in flight.

First the broker that leads most synod.task-events partitions is SIGKILLed mid-run:
no task is lost, none has two outcomes, `synod check` is clean, completions resume
(the time from the kill to the next outcome is printed); the broker restarted on its
data is back in the ISR of every partition it hosted. Then a rolling restart of all
three brokers (one at a time, each waiting for every ISR to be full) under another
200 tasks: the same assertions. The resident memory of the brokers and services is
sampled through the run and printed.

Heavy (three JVMs and ~10 services on 2 cores): `make test-cluster`, not `make test`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from tests.localteam import assert_log_checks, local_team, outcomes_by_task, send_goals

from synod.dev.localkafka import rss_bytes
from synod.dev.localrun import LocalRun
from synod.transport.topics import RESULTS, TASK_EVENTS, topic_name

pytestmark = pytest.mark.timeout(1500)
TASKS_N = 200
REPLICAS = {"consensus": 1, "planner": 1, "researcher": 1, "coder": 2, "reviewer": 3}
# Short sim calls keep 200 tasks within minutes here; no escalation: a ballot lost to
# a broker change must end its task, not park it for a person this test does not play.
ENV = {"SYNOD_LLM_SIM_LATENCY": "exponential:0.05", "SYNOD_ESCALATE": "false"}


class Outcomes:
    """Every outcome on synod.results with the monotonic time it was read."""

    def __init__(self, run: LocalRun) -> None:
        self.run = run
        self.seen: list[tuple[float, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            topic_name(RESULTS, self.run.prefix),
            bootstrap_servers=self.run.bootstrap,
            auto_offset_reset="earliest",
            group_id=f"watch-{uuid.uuid4().hex}",
        )
        await consumer.start()

        async def loop() -> None:
            try:
                while True:
                    for batch in (await consumer.getmany(timeout_ms=300)).values():
                        now = time.monotonic()
                        self.seen.extend((now, r) for r in batch)
            finally:
                await consumer.stop()

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def by_task(self) -> dict[str, set[tuple[str, str]]]:
        return outcomes_by_task([r for _, r in self.seen])

    async def wait_for(self, tasks: set[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not tasks <= set(self.by_task()):
            missing = tasks - set(self.by_task())
            assert time.monotonic() < deadline, f"{len(missing)} tasks without an outcome"
            dead = [c.instance for c in self.run.children if not c.alive]
            assert not dead, f"services exited: {dead}"
            await asyncio.sleep(0.5)

    async def wait_count(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.by_task()) < count:
            assert time.monotonic() < deadline, f"{len(self.by_task())} outcomes, not {count}"
            await asyncio.sleep(0.2)

    def first_after(self, t: float) -> float:
        return min(seen for seen, _ in self.seen if seen > t) - t


class Memory:
    """Peak resident memory per process, sampled every 2 s."""

    def __init__(self, cluster: Any, run: LocalRun) -> None:
        self.cluster, self.run = cluster, run
        self.peak: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        pids = {f"broker-{i + 1}": pid for i, pid in enumerate(self.cluster.pids())}
        pids |= {c.instance: c.proc.pid for c in self.run.children if c.proc and c.alive}
        for name, pid in pids.items():
            with contextlib.suppress(OSError):
                self.peak[name] = max(self.peak.get(name, 0), rss_bytes(pid))

    async def start(self) -> None:
        async def loop() -> None:
            while True:
                self.sample()
                await asyncio.sleep(2)

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def report(self) -> str:
        mib = {k: v / 2**20 for k, v in sorted(self.peak.items())}
        brokers = sum(v for k, v in mib.items() if k.startswith("broker-"))
        services = sum(v for k, v in mib.items() if not k.startswith("broker-"))
        each = ", ".join(f"{k} {v:.0f}" for k, v in mib.items())
        return f"peak RSS MiB: brokers {brokers:.0f}, services {services:.0f} ({each})"


async def _partitions(bootstrap: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Every topic of this run -> its partitions (leader, replicas, isr)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        described = await admin.describe_topics(names)
        return {d["topic"]: d["partitions"] for d in described}
    finally:
        await admin.close()


async def _wait_isr(bootstrap: str, prefix: str, node: int | None, timeout_s: float) -> float:
    """Until `node` (or, with None, every replica) is in the ISR of every partition it
    hosts; returns the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            topics = await _partitions(bootstrap, prefix)
            behind = [
                (t, p["partition"])
                for t, parts in topics.items()
                for p in parts
                for r in p["replicas"]
                if (node is None or r == node) and r not in p["isr"]
            ]
        except Exception as err:  # a broker mid-restart may refuse metadata
            behind = [("metadata", repr(err))]
        if not behind:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout_s, f"not in the ISR yet: {behind[:5]}"
        await asyncio.sleep(1)


def _assert_once_each(outcomes: Outcomes, tasks: set[str]) -> None:
    by_task = outcomes.by_task()
    lost = tasks - set(by_task)
    assert not lost, f"{len(lost)} tasks lost: {sorted(lost)[:5]}"
    duplicated = {t: o for t, o in by_task.items() if t in tasks and len(o) != 1}
    assert not duplicated, f"tasks with more than one outcome: {duplicated}"


async def test_broker_kill_and_rolling_restart_under_load_lose_nothing(
    kafka_cluster: Any, tmp_path: Path
) -> None:
    started = time.monotonic()
    replicas = {**REPLICAS, "gateway": 1}
    async with local_team(kafka_cluster.bootstrap, tmp_path, "cluster", replicas, ENV) as run:
        outcomes, memory = Outcomes(run), Memory(kafka_cluster, run)
        await outcomes.start()
        await memory.start()
        try:
            events = topic_name(TASK_EVENTS, run.prefix)
            parts = (await _partitions(run.bootstrap, run.prefix))[events]
            assert {len(p["replicas"]) for p in parts} == {3}
            leaders = Counter(p["leader"] for p in parts)
            victim = leaders.most_common(1)[0][0]

            # 1. SIGKILL of the leader of most task partitions, 200 tasks in flight.
            first = {f"k{i}-{uuid.uuid4().hex[:6]}" for i in range(TASKS_N)}
            await send_goals(run, {t: f"Write function {t}" for t in first})
            # Kill mid-run: once the team is working (10 outcomes), with ~190 in flight.
            await outcomes.wait_count(10, 300)
            killed_at = time.monotonic()
            await asyncio.to_thread(kafka_cluster.kill, victim)
            done_at_kill = len(outcomes.by_task())
            await outcomes.wait_for(first, 600)
            resumed_in = outcomes.first_after(killed_at)
            all_done_in = time.monotonic() - killed_at
            _assert_once_each(outcomes, first)

            await asyncio.to_thread(kafka_cluster.restart, victim)
            caught_up_in = await _wait_isr(run.bootstrap, run.prefix, victim, 180)
            print(
                f"\n[cluster-team] SIGKILL node {victim} (led {leaders[victim]}/{len(parts)} "
                f"task-event partitions) with {done_at_kill}/{TASKS_N} done; next outcome "
                f"{resumed_in:.1f}s after the kill, all {TASKS_N} {all_done_in:.1f}s after; "
                f"restarted node back in every ISR {caught_up_in:.1f}s after its restart"
            )

            # 2. Rolling restart of all three brokers under another 200 tasks.
            second = {f"r{i}-{uuid.uuid4().hex[:6]}" for i in range(TASKS_N)}
            await send_goals(run, {t: f"Write function {t}" for t in second})
            rolling_at = time.monotonic()
            steps = []
            for node in (1, 2, 3):
                t0 = time.monotonic()
                await asyncio.to_thread(kafka_cluster.stop, node)
                await asyncio.to_thread(kafka_cluster.restart, node)
                isr_s = await _wait_isr(run.bootstrap, run.prefix, None, 180)
                steps.append(f"node {node} {time.monotonic() - t0:.1f}s (ISR {isr_s:.1f}s)")
            done_during = len(second & set(outcomes.by_task()))
            await outcomes.wait_for(second, 600)
            _assert_once_each(outcomes, first | second)
            print(
                f"[cluster-team] rolling restart {', '.join(steps)}; {done_during}/{TASKS_N} "
                f"done during it, all {TASKS_N} {time.monotonic() - rolling_at:.1f}s after "
                f"its start"
            )
            memory.sample()
            print(f"[cluster-team] {memory.report()}; run {time.monotonic() - started:.0f}s")
        finally:
            await memory.stop()
            await outcomes.stop()
        await assert_log_checks(run)
