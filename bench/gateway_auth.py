"""Benchmark: does a wrong bearer token cost the gateway the same time as a right one?

Two measurements, both printed, neither asserted:
- lookup: `TokenBook.principal_for` alone (hash, then a constant-time compare with
  every stored digest), for the right token, a wrong token of the same length, a
  wrong token sharing the right one's first half, and an empty one; N calls each,
  interleaved so load on the host falls on all alike;
- http: whole requests to the gateway's app over real HTTP on 127.0.0.1 (aiohttp's
  test server), a right token answering 404 for an unknown task, a wrong one 401;
  the gap there is the rest of the request path, not the comparison.

Reported: median and p90 per case in microseconds, and each wrong case's median
minus the right one's. Prints a table; with --json exactly one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from synod.core.taskview import TaskIndex
from synod.roles.gateway.app import create_app
from synod.roles.gateway.tokens import TokenBook, hashed_entry
from synod.roles.gateway.view import TaskFeed
from synod.wire import ContentType, Envelope

RIGHT = "tok-" + "a1b2c3d4" * 6


def machine_info() -> dict[str, Any]:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def cases() -> dict[str, str]:
    half = len(RIGHT) // 2
    return {
        "right": RIGHT,
        "wrong, same length": "x" * len(RIGHT),
        "wrong, right first half": RIGHT[:half] + "z" * (len(RIGHT) - half),
        "empty": "",
    }


def summarise(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    right = statistics.median(samples["right"])
    out = {}
    for name, xs in samples.items():
        xs = sorted(xs)
        median = statistics.median(xs)
        out[name] = {
            "median_us": round(median * 1e6, 3),
            "p90_us": round(xs[int(len(xs) * 0.9)] * 1e6, 3),
            "minus_right_us": round((median - right) * 1e6, 3),
        }
    return out


def lookup(n: int, entries: int) -> dict[str, dict[str, float]]:
    book = TokenBook.from_settings(
        [hashed_entry("caller", RIGHT)]
        + [hashed_entry(f"other{i}", f"t{i}") for i in range(entries - 1)]
    )
    tokens = cases()
    samples: dict[str, list[float]] = {k: [] for k in tokens}
    for _ in range(n):
        for name, token in tokens.items():
            started = time.perf_counter()
            book.principal_for(token)
            samples[name].append(time.perf_counter() - started)
    return summarise(samples)


class _NoPublisher:
    async def publish(
        self, topic: str, envelope: Envelope[Any], content_type: ContentType = "avro"
    ) -> None:
        return None


async def http(n: int) -> dict[str, dict[str, float]]:
    app = create_app(_NoPublisher(), TaskFeed(TaskIndex()), tokens=[f"caller={RIGHT}"])
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    tokens = {k: v for k, v in cases().items() if k != "empty"}
    samples: dict[str, list[float]] = {k: [] for k in tokens}
    try:
        for _ in range(n):
            for name, token in tokens.items():
                started = time.perf_counter()
                response = await client.get(
                    "/v1/tasks/none", headers={"Authorization": f"Bearer {token}"}
                )
                await response.read()
                samples[name].append(time.perf_counter() - started)
                assert response.status == (404 if name == "right" else 401), response.status
    finally:
        await client.close()
    return summarise(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="lookups per case")
    parser.add_argument("--requests", type=int, default=500, help="HTTP requests per case")
    parser.add_argument("--entries", type=int, default=8, help="tokens the gateway stores")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    doc = {
        "bench": "gateway_auth",
        "machine": machine_info(),
        "entries": args.entries,
        "lookup": lookup(args.n, args.entries),
        "http": asyncio.run(http(args.requests)),
    }
    if args.json:
        print(json.dumps(doc))
        return 0
    m = doc["machine"]
    print(f"gateway token check, {m['cores']} cores, {m['cpu']}, Python {m['python']}")
    for part, n in (("lookup", args.n), ("http", args.requests)):
        print(f"\n{part} ({n} per case, {args.entries} stored tokens)")
        print(f"  {'case':28} {'median us':>10} {'p90 us':>10} {'- right us':>11}")
        for name, row in doc[part].items():
            print(
                f"  {name:28} {row['median_us']:>10.2f} {row['p90_us']:>10.2f} "
                f"{row['minus_right_us']:>11.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
