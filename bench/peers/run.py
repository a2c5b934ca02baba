"""Peer benchmark: one request/reply workload on Synod's transport and on raw aiokafka.

The same broker, the same workload, one run. A requester (this process) sends
requests keyed over 16 keys to a responder process, which answers each on a
reply topic. Per system:

1. round trip, one request at a time: p50 / p99 (ms);
2. messages/s delivered: a burst of pipelined requests, replies per second;
3. RSS of each process (requester, responder) after the burst, from /proc;
4. SIGKILL: a paced stream; a third of the way in the responder is killed
   with SIGKILL and started again; requests never answered (lost) and answered
   twice (duplicates) are counted after a bounded wait.

Systems: `synod` (Publisher + KeyOrderedConsumer on both sides: commits only
what was handled), `aiokafka` (AIOKafkaProducer + a consumer group with
aiokafka's default auto-commit), `faust` (a faust-streaming agent as the
responder: bench/peers/faust_peer.py in .cache/peers-faust-venv; the aiokafka
requester) and `autogen` (AutoGen Core's gRPC runtime: bench/peers/autogen_peer.py
in .cache/peers-venv). This creates both venvs on first use.

`synod-services` is the same workload as a two-agent hop through Synod's real
services: the requester plays the planner and publishes a `StepRequested` to
synod.steps.coder; a real coder worker (`synod_services.coder`, its own process
under `LocalRun`, the simulated model with no latency) runs the step and
publishes its `StepCompleted` on synod.task-events, which the requester reads.
So each round trip includes the worker's decode, validation, its core, the
model adapter and the outcome's publication; the SIGKILL kills the worker.

    .venv/bin/python bench/peers/run.py [--json] [--rtt N] [--burst N] [--stream N]

Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/machine.py
from machine import cpu_s, describe, machine_info
from synod.dev import localkafka
from synod.dev.localrun import LocalRun
from synod.transport import ConsumerConfig, KeyOrderedConsumer, Publisher, RawRecord, Received
from synod.transport.reader import PartitionReader, decode, topic_partitions
from synod.transport.topics import STEPS_CODER, TASK_EVENTS, topic_name
from synod.wire import Envelope, Sender, StepCompleted, StepRequested

SYSTEMS = ("synod", "aiokafka")  # over Kafka, in this venv
SERVICES = "synod-services"  # a hop through the real services (a coder worker)
PEERS = ("faust", "autogen")  # in venvs of their own
ROOT = Path(__file__).resolve().parents[2]
# Pinned here, never in the project's deps (faust left them: ADR 0003).
AUTOGEN_PINS = ("autogen-core==0.7.5", "autogen-ext[grpc]==0.7.5")
FAUST_PINS = ("faust-streaming==0.15.3",)
VENVS = {"autogen": ("peers-venv", AUTOGEN_PINS), "faust": ("peers-faust-venv", FAUST_PINS)}
KEYS = 16
WAIT_S = 30.0  # how long the requester waits for the stream's last replies
SENDER = Sender(role="planner", instance="peers-bench")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def _no_dead_letters(record: RawRecord, reason: str, message: str, cls: str) -> None:
    raise RuntimeError(f"dead letter in the benchmark: {reason}: {message}")


# ---------------------------------------------------------------- the two sides


class Wire:
    """One system's way of sending a request / reply and of reading them."""

    def __init__(self, system: str, bootstrap: str) -> None:
        self.system, self.bootstrap = system, bootstrap
        self.publisher: Publisher | None = None
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self.system == "synod":
            self.publisher = Publisher(self.bootstrap, client_id="peers")
            await self.publisher.start()
        else:
            self.producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True
            )
            await self.producer.start()

    async def stop(self) -> None:
        if self.publisher is not None:
            await self.publisher.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, topic: str, seq: int) -> None:
        key = f"k{seq % KEYS}"
        if self.publisher is not None:
            env = Envelope.new(
                StepCompleted(step_id="s", output=str(seq)), sender=SENDER, task_id=key
            )
            await self.publisher.publish(topic, env)
        else:
            assert self.producer is not None
            await self.producer.send_and_wait(topic, str(seq).encode(), key=key.encode())

    def consume(self, topic: str, group: str, on_seq: Any, *, from_latest: bool = False) -> Any:
        """A started-on-demand consumer calling `on_seq(seq)` for every record."""
        if self.system == "synod":

            async def handler(msg: Received) -> None:
                await on_seq(int(msg.envelope.body.output))

            return KeyOrderedConsumer(
                self.bootstrap,
                group,
                [topic],
                handler,
                dead_letter=_no_dead_letters,
                config=ConsumerConfig(concurrency=64),
            )
        return _RawConsumer(self.bootstrap, topic, group, on_seq)


class _RawConsumer:
    def __init__(self, bootstrap: str, topic: str, group: str, on_seq: Any) -> None:
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
        )
        self.on_seq = on_seq
        self.task: asyncio.Task[None] | None = None

    @property
    def assigned(self) -> bool:
        return bool(self.consumer.assignment())

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for r in records:
                    await self.on_seq(int(r.value))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.consumer.stop()


async def responder(system: str, bootstrap: str, requests: str, replies: str, group: str) -> None:
    wire = Wire(system, bootstrap)
    await wire.start()

    async def answer(seq: int) -> None:
        await wire.send(replies, seq)

    consumer = wire.consume(requests, group, answer)
    await consumer.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await consumer.stop()
    await wire.stop()


# ---------------------------------------------------------------- the requester


def _spawn(system: str, bootstrap: str, req: str, rep: str, group: str) -> subprocess.Popen[str]:
    if system == "faust":
        script = str(Path(__file__).with_name("faust_peer.py"))
        cmd = [str(peer_python("faust")), script, bootstrap, req, rep, group]
        faust = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert faust.stdout is not None
        for line in faust.stdout:  # faust may print a banner first
            if line.strip() == "ready":
                return faust
        raise RuntimeError("the faust responder did not start")
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--responder",
            system,
            "--bootstrap",
            bootstrap,
            "--requests",
            req,
            "--replies",
            rep,
            "--group",
            group,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"the {system} responder did not start")
    return proc


async def _topics(bootstrap: str) -> tuple[str, str]:
    names = [f"peers.{uuid.uuid4().hex[:8]}.{n}" for n in ("req", "rep")]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 6, 1) for n in names])
    finally:
        await admin.close()
    return names[0], names[1]


async def measure(system: str, bootstrap: str, rtt_n: int, burst_n: int, stream_n: int) -> Any:
    req, rep = await _topics(bootstrap)
    group = f"peers-{system}-{uuid.uuid4().hex[:6]}"
    proc = _spawn(system, bootstrap, req, rep, group)
    wire = Wire("aiokafka" if system == "faust" else system, bootstrap)  # faust: the responder
    await wire.start()
    arrived: dict[int, int] = {}
    waiting: dict[int, asyncio.Future[float]] = {}

    async def on_reply(seq: int) -> None:
        arrived[seq] = arrived.get(seq, 0) + 1
        fut = waiting.pop(seq, None)
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())

    replies = wire.consume(rep, f"{group}-replies", on_reply)
    await replies.start()
    try:
        loop = asyncio.get_running_loop()

        async def call(seq: int) -> float:
            waiting[seq] = loop.create_future()
            started = time.perf_counter()
            await wire.send(req, seq)
            return await asyncio.wait_for(waiting[seq], 30) - started

        for seq in range(20):  # warm-up: assignments and connections
            await call(seq)
        rtts = [await call(seq) for seq in range(1_000, 1_000 + rtt_n)]
        started = time.perf_counter()
        base = 100_000
        await asyncio.gather(*(call(seq) for seq in range(base, base + burst_n)))
        burst_s = time.perf_counter() - started
        rss = {"requester": rss_mib(os.getpid()), "responder": rss_mib(proc.pid)}

        # SIGKILL a third of the way through a paced stream, then start it again.
        base = 1_000_000
        stream = list(range(base, base + stream_n))
        for seq in stream:
            waiting[seq] = loop.create_future()
        answered = [waiting[seq] for seq in stream]
        killed_at = stream_n // 3
        for i, seq in enumerate(stream):
            if i == killed_at:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                proc = _spawn(system, bootstrap, req, rep, group)
            await wire.send(req, seq)
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*answered), WAIT_S)
        lost = sum(1 for s in stream if s not in arrived)
        dupes = sum(1 for s in stream if arrived.get(s, 0) > 1)
        return {
            "rtt_p50_ms": round(_percentile(rtts, 0.5) * 1e3, 2),
            "rtt_p99_ms": round(_percentile(rtts, 0.99) * 1e3, 2),
            "rtt_n": rtt_n,
            "messages_per_s": round(burst_n / burst_s),
            "burst_n": burst_n,
            "rss_mib": rss,
            "sigkill": {
                "stream_n": stream_n,
                "killed_after": killed_at,
                "lost": lost,
                "duplicates": dupes,
                "wait_s": WAIT_S,
            },
        }
    finally:
        await replies.stop()
        await wire.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


async def measure_services(bootstrap: str, rtt_n: int, burst_n: int, stream_n: int) -> Any:
    """The workload as a step request to a real coder worker and its StepCompleted back."""
    prefix = f"peers{uuid.uuid4().hex[:6]}."
    os.environ["SYNOD_LLM_BACKEND"] = "sim"
    os.environ["SYNOD_LLM_SIM_LATENCY"] = "fixed:0"
    with tempfile.TemporaryDirectory(prefix="peers-services-") as tmp:
        run = LocalRun(
            bootstrap=bootstrap,
            prefix=prefix,
            run_dir=Path(tmp),
            gateway_port=localkafka.free_port(),
            replicas={"coder": 1},
        )
        await run.start()
        try:
            await run.wait_ready()
            return await _services_workload(run, prefix, rtt_n, burst_n, stream_n)
        finally:
            run.stop()


async def _services_workload(
    run: LocalRun, prefix: str, rtt_n: int, burst_n: int, stream_n: int
) -> Any:
    assert run.bootstrap is not None
    bootstrap = run.bootstrap
    (worker,) = [c for c in run.children if c.role == "coder"]
    arrived: dict[int, int] = {}
    waiting: dict[int, asyncio.Future[float]] = {}
    publisher = Publisher(bootstrap, client_id="peers-services")
    await publisher.start()
    events = topic_name(TASK_EVENTS, prefix)
    steps = topic_name(STEPS_CODER, prefix)
    async with PartitionReader(bootstrap, client_id="peers-services-follow") as follow:
        await follow.assign(await topic_partitions(bootstrap, [events]), "end")

        async def read_outcomes() -> None:
            while True:
                for got in decode(await follow.poll(0.2)).received:
                    body = got.envelope.body
                    if isinstance(body, StepCompleted) and body.step_id.startswith("p"):
                        seq = int(body.step_id[1:].split("-")[0])
                        arrived[seq] = arrived.get(seq, 0) + 1
                        fut = waiting.pop(seq, None)
                        if fut is not None and not fut.done():
                            fut.set_result(time.perf_counter())

        reading = asyncio.create_task(read_outcomes())
        loop = asyncio.get_running_loop()

        async def send(seq: int) -> None:
            key = f"peers-{seq % KEYS}"
            body = StepRequested(step_id=f"p{seq}", role="coder", title="echo", instructions="x")
            await publisher.publish(steps, Envelope.new(body, sender=SENDER, task_id=key))

        async def call(seq: int) -> float:
            waiting[seq] = loop.create_future()
            started = time.perf_counter()
            await send(seq)
            return await asyncio.wait_for(waiting[seq], 60) - started

        try:
            for seq in range(20):
                await call(seq)
            rtts = [await call(seq) for seq in range(1_000, 1_000 + rtt_n)]
            assert worker.proc is not None
            cpu_before = cpu_s(worker.proc.pid), time.process_time()
            started = time.perf_counter()
            await asyncio.gather(*(call(seq) for seq in range(100_000, 100_000 + burst_n)))
            burst_s = time.perf_counter() - started
            cpu_after = cpu_s(worker.proc.pid), time.process_time()
            worker_cpu = (
                None
                if cpu_before[0] is None or cpu_after[0] is None
                else cpu_after[0] - cpu_before[0]
            )
            # CPU per step over the burst: what a record costs the worker (its decode,
            # core, sim model, encode and publish) and this requester (publish, read).
            cpu_ms_per_step = {
                "responder": None if worker_cpu is None else round(worker_cpu / burst_n * 1e3, 3),
                "requester": round((cpu_after[1] - cpu_before[1]) / burst_n * 1e3, 3),
            }
            rss = {"requester": rss_mib(os.getpid()), "responder": rss_mib(worker.proc.pid)}
            stream = list(range(1_000_000, 1_000_000 + stream_n))
            for seq in stream:
                waiting[seq] = loop.create_future()
            answered = [waiting[seq] for seq in stream]
            killed_at = stream_n // 3
            for i, seq in enumerate(stream):
                if i == killed_at:
                    os.killpg(worker.proc.pid, signal.SIGKILL)
                    worker.proc.wait()
                    worker.start()  # as LocalRun's watch would, at once
                await send(seq)
                if i % 50 == 0:
                    await asyncio.sleep(0.01)
            # A worker answers far slower than a transport echo: "lost" must not
            # count steps still queued, so the wait grows with the burst's rate.
            wait_s = WAIT_S + 2 * stream_n / max(1.0, burst_n / burst_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*answered), wait_s)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            await publisher.stop()
    lost = sum(1 for s in stream if s not in arrived)
    dupes = sum(1 for s in stream if arrived.get(s, 0) > 1)
    return {
        "rtt_p50_ms": round(_percentile(rtts, 0.5) * 1e3, 2),
        "rtt_p99_ms": round(_percentile(rtts, 0.99) * 1e3, 2),
        "rtt_n": rtt_n,
        "messages_per_s": round(burst_n / burst_s),
        "burst_n": burst_n,
        "rss_mib": rss,
        "cpu_ms_per_step": cpu_ms_per_step,
        "sigkill": {
            "stream_n": stream_n,
            "killed_after": killed_at,
            "lost": lost,
            "duplicates": dupes,
            "wait_s": round(wait_s, 1),
        },
        "hop": "StepRequested -> coder worker (sim model) -> StepCompleted",
    }


def peer_python(peer: str) -> Path:
    """A peer's own venv under .cache (created on first use), so its installs stay out of .venv."""
    name, pins = VENVS[peer]
    venv = ROOT / ".cache" / name
    python = venv / "bin" / "python"
    stamp = venv / (".installed-" + "-".join(pins).replace("/", "_"))
    if not stamp.exists():
        _log(f"creating {venv} with {', '.join(pins)}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], check=True)
        stamp.touch()
    return python


def peer_versions(peer: str, wanted: set[str]) -> dict[str, str]:
    listed = subprocess.run(
        [str(peer_python(peer)), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {p["name"]: p["version"] for p in json.loads(listed.stdout) if p["name"] in wanted}


def measure_autogen(rtt_n: int, burst_n: int, stream_n: int) -> Any:
    done = subprocess.run(
        [
            str(peer_python("autogen")),
            str(Path(__file__).with_name("autogen_peer.py")),
            "--rtt",
            str(rtt_n),
            "--burst",
            str(burst_n),
            "--stream",
            str(stream_n),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the AutoGen peer failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["versions"] = peer_versions("autogen", {"autogen-core", "autogen-ext", "grpcio"})
    return result


def _table(doc: dict[str, Any]) -> str:
    lines = [
        describe(doc["machine"]),
        "",
        "system           rtt p50  rtt p99   msgs/s  RSS req/resp MiB   SIGKILL: lost  dupes",
    ]
    for name, r in doc["systems"].items():
        rss = r["rss_mib"]
        lines.append(
            f"{name:<16}{r['rtt_p50_ms']:>8.2f}{r['rtt_p99_ms']:>9.2f}{r['messages_per_s']:>9}"
            f"  {rss['requester']:>7}/{rss['responder']:<9}"
            f"{r['sigkill']['lost']:>12}/{r['sigkill']['stream_n']}{r['sigkill']['duplicates']:>7}"
            f"{r['sigkill'].get('hung', 0):>6}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/peers/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rtt", type=int, default=300)
    parser.add_argument("--burst", type=int, default=2_000)
    parser.add_argument("--stream", type=int, default=1_500)
    parser.add_argument("--systems", default=",".join((*SYSTEMS, SERVICES, *PEERS)))
    parser.add_argument("--responder", choices=SYSTEMS)
    # (faust's responder is bench/peers/faust_peer.py, in its own venv)
    parser.add_argument("--bootstrap")
    parser.add_argument("--requests")
    parser.add_argument("--replies")
    parser.add_argument("--group")
    args = parser.parse_args()
    if args.responder:
        asyncio.run(
            responder(args.responder, args.bootstrap, args.requests, args.replies, args.group)
        )
        return 0
    bootstrap = os.environ.get("SYNOD_BOOTSTRAP")
    with tempfile.TemporaryDirectory(prefix="peers-bench-") as tmp:
        if not bootstrap:
            bootstrap = localkafka.start(Path(tmp)).bootstrap
        try:
            started = time.monotonic()
            systems = {}
            for system in args.systems.split(","):
                _log(
                    f"{system}: {args.rtt} round trips, a burst of {args.burst}, "
                    f"a stream of {args.stream} with a SIGKILL"
                )
                if system == "autogen":
                    systems[system] = measure_autogen(args.rtt, args.burst, args.stream)
                    continue
                if system == SERVICES:
                    systems[system] = asyncio.run(
                        measure_services(bootstrap, args.rtt, args.burst, args.stream)
                    )
                    continue
                systems[system] = asyncio.run(
                    measure(system, bootstrap, args.rtt, args.burst, args.stream)
                )
            if "faust" in systems:
                systems["faust"]["versions"] = peer_versions(
                    "faust", {"faust-streaming", "aiokafka"}
                )
            doc = {
                "benchmark": "peers",
                "machine": machine_info(kafka=localkafka.DEFAULT_VERSION),
                "systems": systems,
                "seconds": round(time.monotonic() - started, 1),
            }
        finally:
            if not os.environ.get("SYNOD_BOOTSTRAP"):
                localkafka.stop(Path(tmp))
    print(json.dumps(doc, indent=2) if args.json else _table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
