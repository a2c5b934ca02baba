"""`synod chaos`: bounded load and real faults against a running local team, then the report.

The team is the one `synod up` (or a test's LocalRun) started: its
processes.json names the bootstrap, the topic prefix and every child's pid.
For `duration_s` a load generator submits tasks at `rate_per_s` while the
scenario's faults strike, drawn from the seed (which process, when, how long):

- `kill`: SIGKILL a service process (the run's watcher starts it again);
- `pause`: SIGSTOP a process for 2-8 s, then SIGCONT (a gray failure);
- `mixed`: both;
- `partition`, `slow-link`: a zone's TCP paths to the broker cut, or slowed
  by 300-1500 ms, for 3-10 s, through the toxiproxy of synod.dev.netfaults
  (the team's zoned instances bootstrap through it), then healed;
- `provider`: an outage of the fake Messages API (synod.dev.fakeprovider) the
  team's model calls go to: every request gets a 529 overloaded for 3-8 s;
- `broker-restart`: stop the broker `synod up` started (SIGTERM), keep it down
  for 1-3 s, start it again on its ports and data; the fault lasts until it
  answers again.

Then it waits (bounded) for every submitted task's outcome, reads the whole
log, runs the `synod check` oracle over it and reports: tasks, completed,
failed, escalated (no outcome yet, parked on an EscalationRaised for a person:
durable, not lost), lost (neither), duplicated (two different outcome ids), latency
p50/p99 from submission to outcome, and the time from each fault to the first
outcome after it (time to recover).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiokafka.errors import KafkaError

from synod.core.check import check
from synod.dev import localkafka
from synod.dev.fakeprovider import OUTAGE_PATH
from synod.dev.localrun import read_state
from synod.dev.netfaults import NetFaults, Zone
from synod.errors import ConfigError
from synod.transport.clients import kafka_producer
from synod.transport.logread import read_log
from synod.transport.topics import TASKS, topic_name
from synod.wire import TaskCompleted, TaskFailed
from synod.wire.messages import EscalationRaised

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

SCENARIOS = {
    "kill": "SIGKILL service processes",
    "pause": "SIGSTOP then SIGCONT service processes",
    "mixed": "kill and pause",
    "partition": "cut a zone from the broker (toxiproxy, synod.dev.netfaults)",
    "slow-link": "slow a zone's link to the broker (toxiproxy, synod.dev.netfaults)",
    "provider": "the fake Messages API server answers 529 overloaded for a while",
    "broker-restart": "stop the local broker, then start it again on its data",
}
# Faults leave the gateway alone: the load goes straight to Kafka, so only the
# agents' and the consensus' failures are exercised.
TARGET_ROLES = ("planner", "consensus", "coder", "researcher", "reviewer", "supervisor")


class ChaosError(ConfigError):
    pass


async def proxy_fault(
    net: NetFaults, kind: str, zone: str, length_s: float, rng: random.Random
) -> None:
    """A TCP fault between a zone and the broker through its toxiproxy (synod.dev.netfaults):
    `partition` cuts every path, `slow-link` adds 300-1500 ms; healed after length_s."""
    if kind == "partition":
        await asyncio.to_thread(net.cut, zone)
    else:
        latency = rng.randint(300, 1500)
        await asyncio.to_thread(net.slow, zone, latency_ms=latency, jitter_ms=latency // 4)
    try:
        await asyncio.sleep(length_s)
    finally:
        await asyncio.to_thread(net.heal, zone)


async def _zones_of(api_url: str | None) -> NetFaults:
    """A client of the running toxiproxy server: its zones are the proxies it has."""
    url = api_url or os.environ.get("SYNOD_CHAOS_TOXIPROXY")
    if not url:
        raise ChaosError(
            "TCP scenarios need the team's zones behind toxiproxy (synod.dev.netfaults): "
            "pass --toxiproxy with its API URL (or set SYNOD_CHAOS_TOXIPROXY)"
        )
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(url.rstrip("/") + "/proxies") as answer,
        ):
            proxies = await answer.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ChaosError(f"no toxiproxy API answers at {url}: {exc}") from None
    zones = {
        name: Zone(name, int(p["listen"].rsplit(":", 1)[1]), int(p["upstream"].rsplit(":", 1)[1]))
        for name, p in sorted(proxies.items())
    }
    if not zones:
        raise ChaosError(f"the toxiproxy at {url} has no proxies: no zone to cut")
    return NetFaults(url, zones)


@dataclass
class Target:
    """What the non-process scenarios strike: the fake provider, the local broker."""

    provider_url: str = ""
    broker_dir: Path | None = None
    net: NetFaults | None = None


async def _fake_provider(url: str | None) -> str:
    url = url or os.environ.get("SYNOD_CHAOS_PROVIDER_URL") or os.environ.get("ANTHROPIC_BASE_URL")
    if not url:
        raise ChaosError(
            "scenario 'provider' needs the fake Messages API the team calls: serve one with "
            "`python -m synod.dev.fakeprovider`, start the team with ANTHROPIC_BASE_URL set to "
            "it, and pass --provider-url (or set SYNOD_CHAOS_PROVIDER_URL)"
        )
    url = url.rstrip("/")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.post(url + OUTAGE_PATH, json={"seconds": 0}) as answer,
        ):
            ok = answer.status == 200
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ChaosError(f"the fake provider at {url} does not answer: {exc}") from None
    if not ok:
        raise ChaosError(
            f"{url} is not synod's fake Messages API (no {OUTAGE_PATH}): a real provider "
            "cannot be made to fail; serve `python -m synod.dev.fakeprovider`"
        )
    return url


def _local_broker(state: dict[str, Any], broker_dir: Path | None) -> Path:
    where = broker_dir or (Path(state["broker_dir"]) if state.get("broker_dir") else None)
    if where is None:
        raise ChaosError(
            "scenario 'broker-restart' restarts a broker this machine started: the team was "
            "given one (--bootstrap); pass --broker-dir with that broker's run directory"
        )
    info = localkafka.running(where)
    if info is None or info.bootstrap != state["bootstrap"]:
        raise ChaosError(
            f"no running broker at {state['bootstrap']} in {where}: pass the --broker-dir "
            "of the team's own broker"
        )
    return where


async def _strike(kind: str, target: Target, rng: random.Random, fault: Fault) -> None:
    """A fault that is not a signal to a process; fault.length_s is how long it lasted."""
    begun = time.monotonic()
    if kind in ("partition", "slow-link"):
        assert target.net is not None
        zone = rng.choice(sorted(target.net.zones))
        fault.target = zone
        await proxy_fault(target.net, kind, zone, rng.uniform(3.0, 10.0), rng)
    elif kind == "provider":
        seconds = rng.uniform(3.0, 8.0)
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.post(target.provider_url + OUTAGE_PATH, json={"seconds": seconds}) as answer,
        ):
            answer.raise_for_status()
        await asyncio.sleep(seconds)
    else:
        assert target.broker_dir is not None
        await asyncio.to_thread(localkafka.restart, target.broker_dir, rng.uniform(1.0, 3.0))
    fault.length_s = time.monotonic() - begun


@dataclass
class Fault:
    kind: str
    target: str
    at: float  # wall seconds since the start
    length_s: float = 0.0


@dataclass
class ChaosReport:
    scenario: str
    seed: int
    duration_s: float
    faults: list[Fault] = field(default_factory=list)
    submitted: dict[str, float] = field(default_factory=dict)  # task id -> wall time sent
    doc: dict[str, Any] = field(default_factory=dict)
    unsent: int = 0  # tasks the load could not send (the broker was down)

    @property
    def ok(self) -> bool:
        return bool(self.doc.get("check_ok")) and self.doc.get("lost") == 0


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _children(run_dir: Path | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    state = read_state(run_dir)
    if state is None:
        raise ChaosError(
            f"no running team found (no processes.json in {run_dir or 'the synod up dir'}): "
            "start one with `synod up`, or pass --run-dir"
        )
    children = [c for c in state["children"] if c["role"] in TARGET_ROLES and c["pid"]]
    return state, children


async def run_chaos(
    scenario: str,
    duration_s: float,
    seed: int,
    run_dir: Path | None = None,
    rate_per_s: float = 1.0,
    settle_s: float = 120.0,
    faults_every_s: float = 8.0,
    provider_url: str | None = None,
    broker_dir: Path | None = None,
    toxiproxy: str | None = None,
) -> ChaosReport:
    if scenario not in SCENARIOS:
        raise ChaosError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    state, _ = _children(run_dir)
    bootstrap, prefix = state["bootstrap"], state["prefix"]
    target = Target()
    if scenario == "provider":
        target.provider_url = await _fake_provider(provider_url)
    if scenario == "broker-restart":
        target.broker_dir = _local_broker(state, broker_dir)
    if scenario in ("partition", "slow-link"):
        net = await _zones_of(toxiproxy)
        used = {c.get("bootstrap") for c in state["children"]}
        # Only a zone some instance of the team goes through: cutting another hits nobody.
        zones = {name: z for name, z in net.zones.items() if z.bootstrap in used}
        if not zones:
            raise ChaosError(
                f"no instance of the team reaches the broker through the zones of {net.api_url} "
                f"({', '.join(sorted(net.zones))}): start some with a zone's bootstrap"
            )
        target.net = NetFaults(net.api_url, zones)
    rng = random.Random(seed)
    report = ChaosReport(scenario, seed, duration_s)
    started = time.monotonic()
    producer = kafka_producer(bootstrap)
    await producer.start()
    try:
        load = asyncio.create_task(_load(producer, prefix, seed, rate_per_s, duration_s, report))
        await _faults(scenario, rng, run_dir, target, duration_s, faults_every_s, started, report)
        await load
    finally:
        await producer.stop()
    await _settle(bootstrap, prefix, report, settle_s)
    read = await read_log(bootstrap, prefix)
    report.doc = _summarise(report, read.records, started)
    return report


async def _load(
    producer: AIOKafkaProducer,
    prefix: str,
    seed: int,
    rate_per_s: float,
    duration_s: float,
    report: ChaosReport,
) -> None:
    topic = topic_name(TASKS, prefix)
    ends = time.monotonic() + duration_s
    i = 0
    while time.monotonic() < ends:
        task_id = f"chaos-{seed}-{i}-{os.getpid()}"
        value = json.dumps({"task_id": task_id, "goal": f"chaos task {i}", "deadline_s": 600})
        try:
            await producer.send_and_wait(topic, value.encode(), key=task_id.encode())
        except KafkaError:
            # The broker is down (broker-restart): that task was never submitted.
            report.unsent += 1
        else:
            report.submitted[task_id] = time.time()
        i += 1
        await asyncio.sleep(1.0 / rate_per_s)


async def _faults(
    scenario: str,
    rng: random.Random,
    run_dir: Path | None,
    target: Target,
    duration_s: float,
    every_s: float,
    started: float,
    report: ChaosReport,
) -> None:
    ends = started + duration_s
    await asyncio.sleep(min(every_s / 2, duration_s / 4))
    while time.monotonic() < ends:
        if scenario in ("provider", "broker-restart", "partition", "slow-link"):
            where = target.provider_url or str(target.broker_dir)
            fault = Fault(scenario, where, time.monotonic() - started)
            await _strike(scenario, target, rng, fault)
            report.faults.append(fault)
            await asyncio.sleep(max(0.0, rng.uniform(0.5, 1.5) * every_s - fault.length_s))
            continue
        _, children = _children(run_dir)
        child = rng.choice(children)
        kind = rng.choice(("kill", "pause")) if scenario == "mixed" else scenario
        fault = Fault(kind, child["instance"], time.monotonic() - started)
        if kind == "kill":
            with contextlib.suppress(ProcessLookupError):
                os.kill(child["pid"], signal.SIGKILL)
        else:
            fault.length_s = rng.uniform(2.0, 8.0)
            try:
                os.kill(child["pid"], signal.SIGSTOP)
                await asyncio.sleep(fault.length_s)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child["pid"], signal.SIGCONT)
        report.faults.append(fault)
        await asyncio.sleep(max(0.0, rng.uniform(0.5, 1.5) * every_s - fault.length_s))


async def _settle(bootstrap: str, prefix: str, report: ChaosReport, settle_s: float) -> None:
    """Until every submitted task has an outcome on the log, or the bound."""
    ends = time.monotonic() + settle_s
    while time.monotonic() < ends:
        read = await read_log(bootstrap, prefix)
        # A task parked for a person has settled too: nobody answers during a run.
        done = {
            r.envelope.task_id
            for r in read.records
            if isinstance(r.envelope.body, TaskCompleted | TaskFailed | EscalationRaised)
        }
        if set(report.submitted) <= done:
            return
        await asyncio.sleep(2.0)


def _summarise(report: ChaosReport, records: list[Any], started: float) -> dict[str, Any]:
    outcomes: dict[str, dict[str, Any]] = {}
    parked = {
        r.envelope.task_id
        for r in records
        if r.envelope.task_id in report.submitted and isinstance(r.envelope.body, EscalationRaised)
    }
    for r in records:
        body = r.envelope.body
        if r.envelope.task_id in report.submitted and isinstance(body, TaskCompleted | TaskFailed):
            seen = outcomes.setdefault(r.envelope.task_id, {})
            seen.setdefault(r.envelope.message_id, (type(body).__name__, r.envelope.created_at))
    latencies, ends = [], []
    completed = failed = duplicated = 0
    for task_id, sent_at in report.submitted.items():
        got = outcomes.get(task_id)
        if not got:
            continue
        duplicated += len(got) > 1
        kind, at = min(got.values(), key=lambda v: v[1])
        completed += kind == "TaskCompleted"
        failed += kind == "TaskFailed"
        latencies.append(at.timestamp() - sent_at)
        ends.append(at.timestamp())
    wall_start = time.time() - (time.monotonic() - started)
    recover = []
    for f in report.faults:
        after = [e for e in ends if e >= wall_start + f.at + f.length_s]
        recover.append(
            {
                "kind": f.kind,
                "target": f.target,
                "at_s": round(f.at, 1),
                "length_s": round(f.length_s, 1),
                "recovered_after_s": round(min(after) - (wall_start + f.at), 2) if after else None,
            }
        )
    checked = check(records, since=None)
    mine = [v for v in checked.violations if v.task_id in report.submitted]
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    return {
        "scenario": report.scenario,
        "seed": report.seed,
        "duration_s": report.duration_s,
        "tasks": len(report.submitted),
        "unsent": report.unsent,
        "completed": completed,
        "failed": failed,
        "escalated": len(parked - set(outcomes)),
        "lost": len(set(report.submitted) - set(outcomes) - parked),
        "duplicated": duplicated,
        "latency_p50_s": round(p50, 2) if p50 is not None else None,
        "latency_p99_s": round(p99, 2) if p99 is not None else None,
        "faults": recover,
        "check_ok": not mine,
        "violations": [v.to_json() for v in mine],
        "check_text": checked.text(),
    }
