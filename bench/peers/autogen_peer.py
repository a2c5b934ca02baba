"""The peers workload on AutoGen Core's distributed gRPC runtime (run in its own venv).

Run by bench/peers/run.py with .cache/peers-venv/bin/python (autogen-core and
autogen-ext[grpc] pinned there, not in the project's venv). Processes: a
gRPC host, a responder worker with an echo agent (killed with SIGKILL and
started again mid-stream), and this requester worker. Prints one JSON
document: round trip p50/p99 of `send_message` one at a time, messages/s of a
burst, RSS per process, and for the stream: calls answered, calls that raised
(lost with an error), calls that never returned within the bound (hung), and
messages lost without an error.

    .cache/peers-venv/bin/python bench/peers/autogen_peer.py --rtt N --burst N --stream N
"""
# mypy: ignore-errors
# (autogen-core is installed in the peers venv only; the project's mypy cannot see it)

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autogen_core import (
    AgentId,
    MessageContext,
    RoutedAgent,
    message_handler,
    try_get_known_serializers_for_type,
)
from autogen_ext.runtimes.grpc import GrpcWorkerAgentRuntime, GrpcWorkerAgentRuntimeHost

CALL_TIMEOUT_S = 30.0


@dataclass
class Request:
    seq: int


@dataclass
class Reply:
    seq: int


class Echo(RoutedAgent):
    def __init__(self) -> None:
        super().__init__("echo")

    @message_handler
    async def on_request(self, message: Request, ctx: MessageContext) -> Reply:
        return Reply(seq=message.seq)


def _serializers(runtime: Any) -> None:
    runtime.add_message_serializer(try_get_known_serializers_for_type(Request))
    runtime.add_message_serializer(try_get_known_serializers_for_type(Reply))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def _host(address: str) -> None:
    host = GrpcWorkerAgentRuntimeHost(address=address)
    host.start()
    print("ready", flush=True)
    await host.stop_when_signal()


async def _responder(address: str) -> None:
    worker = GrpcWorkerAgentRuntime(host_address=address)
    _serializers(worker)
    await worker.start()
    await Echo.register(worker, "echo", lambda: Echo())
    print("ready", flush=True)
    await worker.stop_when_signal()


def _spawn(role: str, address: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, f"--{role}", address], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the AutoGen {role} did not start")
    return proc


async def _measure(rtt_n: int, burst_n: int, stream_n: int) -> dict[str, Any]:
    address = f"127.0.0.1:{_free_port()}"
    host = _spawn("host", address)
    responder = _spawn("responder", address)
    worker = GrpcWorkerAgentRuntime(host_address=address)
    _serializers(worker)
    await worker.start()
    echo = AgentId("echo", "default")
    try:

        async def call(seq: int) -> float:
            started = time.perf_counter()
            reply = await worker.send_message(Request(seq), echo)
            assert reply.seq == seq
            return time.perf_counter() - started

        for seq in range(20):
            await call(seq)
        rtts = [await call(seq) for seq in range(1_000, 1_000 + rtt_n)]
        started = time.perf_counter()
        await asyncio.gather(*(call(seq) for seq in range(100_000, 100_000 + burst_n)))
        burst_s = time.perf_counter() - started
        rss = {
            "host": _rss_mib(host.pid),
            "requester": _rss_mib(os.getpid()),
            "responder": _rss_mib(responder.pid),
        }
        answered = errors = hung = 0

        async def streamed(seq: int) -> None:
            nonlocal answered, errors, hung
            try:
                await asyncio.wait_for(worker.send_message(Request(seq), echo), CALL_TIMEOUT_S)
                answered += 1
            except TimeoutError:
                hung += 1
            except Exception:
                errors += 1

        calls = []
        killed_at = stream_n // 3
        for i in range(stream_n):
            if i == killed_at:
                responder.send_signal(signal.SIGKILL)
                responder.wait()
                responder = _spawn("responder", address)
            calls.append(asyncio.create_task(streamed(1_000_000 + i)))
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        await asyncio.gather(*calls)
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
                "answered": answered,
                "raised": errors,
                "hung": hung,
                "lost": stream_n - answered,
                "duplicates": 0,
                "wait_s": CALL_TIMEOUT_S,
            },
        }
    finally:
        await worker.stop()
        for proc in (responder, host):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/peers/autogen_peer.py")
    parser.add_argument("--host")
    parser.add_argument("--responder")
    parser.add_argument("--rtt", type=int, default=300)
    parser.add_argument("--burst", type=int, default=2_000)
    parser.add_argument("--stream", type=int, default=1_500)
    args = parser.parse_args()
    if args.host:
        asyncio.run(_host(args.host))
        return 0
    if args.responder:
        asyncio.run(_responder(args.responder))
        return 0
    print(json.dumps(asyncio.run(_measure(args.rtt, args.burst, args.stream))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
