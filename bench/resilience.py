"""Benchmark: what the resilience layer costs per LLM call, and how fast it fails.

Offline. Measures, on this machine:

- breaker: `allow` + `record` pairs per second on the pure core (closed, with a
  full rolling window), and `allow` on an open breaker (the fail-fast path);
- wrapper: the overhead `ResilientBackend.complete` adds to a backend that
  answers at once (role and provider bulkheads on, one fallback configured),
  per call, against calling that backend directly;
- fail fast: the time `complete` takes to raise `circuit_open` when every
  breaker in the chain is open (no call goes out).

Prints a table; with --json exactly one JSON document on stdout. Asserts nothing
about time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time

from machine import describe, machine_info  # bench/machine.py; bench/ is not a package
from synod.core.resilience.breaker import BreakerConfig, CircuitBreaker
from synod.core.resilience.registry import BreakerBoard
from synod.llm import LLMRequest, LLMResponse, LLMTransientError
from synod.llm.resilient import ResilientBackend, Route
from synod.wire.messages import Usage


class Instant:
    name = "anthropic"
    model = "primary"

    def __init__(self) -> None:
        self.down = False

    async def complete(self, request: LLMRequest) -> LLMResponse:
        model = request.model or self.model
        if self.down:
            raise LLMTransientError("529", reason="overloaded", model=model)
        return LLMResponse(text="", parsed=None, usage=Usage(model=model), model=model, latency_s=0)

    async def aclose(self) -> None:
        pass


def bench_breaker(n: int) -> dict[str, float]:
    breaker = CircuitBreaker(BreakerConfig(window_s=1e9, min_calls=10**9))
    start = time.perf_counter()
    for i in range(n):
        d = breaker.allow(float(i))
        assert d.permit is not None
        breaker.record(d.permit, float(i), ok=i % 10 != 0)
    closed = time.perf_counter() - start
    opened = CircuitBreaker(BreakerConfig(min_calls=1, open_for_s=1e12))
    d = opened.allow(0.0)
    assert d.permit is not None
    opened.record(d.permit, 0.0, ok=False)
    start = time.perf_counter()
    for i in range(n):
        opened.allow(float(i))
    open_s = time.perf_counter() - start
    return {"closed_pairs_per_s": n / closed, "open_allow_per_s": n / open_s}


async def bench_wrapper(n: int) -> dict[str, float]:
    inner = Instant()

    def wrapper() -> ResilientBackend:
        return ResilientBackend(
            {"anthropic": inner},
            "anthropic",
            fallbacks=[Route("anthropic", "fallback")],
            breaker=BreakerConfig(min_calls=5, open_for_s=1e9),
            provider_limits={"anthropic": 64},
            role_limits={"coder": 64},
            board=BreakerBoard(),
        )

    llm = wrapper()
    requests = [
        LLMRequest(role="coder", task_id=f"t{i}", step_id="s", prompt="p", timeout_s=60)
        for i in range(n)
    ]
    start = time.perf_counter()
    for r in requests:
        await inner.complete(r)
    direct = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for r in requests:
        await llm.complete(r)
    wrapped = (time.perf_counter() - start) / n
    inner.down = True
    llm = wrapper()  # a fresh window, which the failures below fill
    for r in requests[:10]:  # open both breakers
        with contextlib.suppress(LLMTransientError):
            await llm.complete(r)
    reasons: set[str] = set()
    start = time.perf_counter()
    for r in requests:
        try:
            await llm.complete(r)
        except LLMTransientError as exc:
            reasons.add(exc.reason)
    fail_fast = (time.perf_counter() - start) / n
    if reasons != {"circuit_open"}:
        raise SystemExit(f"expected every call to fail fast with circuit_open, got {reasons}")
    return {
        "direct_us": direct * 1e6,
        "wrapped_us": wrapped * 1e6,
        "overhead_us": (wrapped - direct) * 1e6,
        "circuit_open_us": fail_fast * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per measurement")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args()
    logging.getLogger("synod").setLevel(logging.ERROR)  # no line per breaker transition
    if args.calls < 100:
        parser.error("--calls must be at least 100")
    result = {
        "machine": machine_info(),
        "calls": args.calls,
        "breaker": bench_breaker(args.calls),
        "wrapper": asyncio.run(bench_wrapper(args.calls)),
    }
    if args.json:
        json.dump(result, sys.stdout)
        print()
        return
    m, b, w = result["machine"], result["breaker"], result["wrapper"]
    print(describe(m))
    print(f"calls per measurement: {args.calls}")
    print(f"{'measure':45s} {'value':>14s}")
    print(f"{'breaker allow+record, closed (pairs/s)':45s} {b['closed_pairs_per_s']:14,.0f}")
    print(f"{'breaker allow, open (calls/s)':45s} {b['open_allow_per_s']:14,.0f}")
    print(f"{'backend called directly (us/call)':45s} {w['direct_us']:14.1f}")
    print(f"{'through ResilientBackend (us/call)':45s} {w['wrapped_us']:14.1f}")
    print(f"{'overhead of the wrapper (us/call)':45s} {w['overhead_us']:14.1f}")
    print(f"{'circuit_open, every breaker open (us/call)':45s} {w['circuit_open_us']:14.1f}")


if __name__ == "__main__":
    main()
