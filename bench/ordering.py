"""Benchmark: what causal order costs, offline (no broker).

- envelope bytes (Avro single-object, the internal topics' encoding) of a
  StepCompleted with its vector clock at 5, 20 and 100 participants, against
  the same envelope unstamped;
- the cost of stamping on send and merging on receive (`Stamper`), per hop;
- the causal buffer: offers per second on a random history delivered in a
  random order, with how many waited and how long (in offers);
- `synod check`'s oracle: records per second over N tasks' honest logs.

Prints a table; with --json exactly one JSON document on stdout. It asserts
nothing: numbers are reported, never judged. For the cost on the real
pipeline (hop latency p99, tasks/s with clocks on and off) see docs/ordering.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from typing import Any

from synod import __version__ as synod_version
from synod.core.check import LogRecord, check
from synod.core.ordering import CausalBuffer
from synod.transport.causal import HANDLING, Stamper
from synod.wire import Codec, Envelope, Sender, StepCompleted
from synod.wire.messages import Decision, TaskCompleted, TaskSubmitted, Vote, VoteRequested

CODEC = Codec()
CODER = Sender(role="coder", instance="coder-1")


def machine_info() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "synod": synod_version,
    }


def envelope_bytes(participants: int) -> dict[str, Any]:
    body = StepCompleted(step_id="s1", output="x" * 200)
    plain = Envelope.new(body, sender=CODER, task_id="task-0123456789abcdef")
    clock = {f"coder-{i:03d}-7f9c4d": 1 + i % 7 for i in range(participants)}
    stamped = plain.model_copy(
        update={"vclock": clock, "lamport": 12345, "hlc": (1_764_000_000_000 << 16) | 3}
    )
    a, b = len(CODEC.encode(plain, "avro")), len(CODEC.encode(stamped, "avro"))
    return {"participants": participants, "unstamped": a, "stamped": b, "clock_bytes": b - a}


def stamp_cost(hops: int) -> dict[str, Any]:
    a, b = Stamper("planner-0"), Stamper("coder-1")
    env = Envelope.new(StepCompleted(step_id="s1"), sender=CODER, task_id="t")
    started = time.perf_counter()
    for _ in range(hops):
        sent = a.stamp("synod.task-events", env)
        b.observe("synod.task-events", sent)
        token = HANDLING.set(sent)
        reply = b.stamp("synod.task-events", env)
        HANDLING.reset(token)
        a.observe("synod.task-events", reply)
    per_hop = (time.perf_counter() - started) / (2 * hops)
    # For scale, on the same machine at the same moment: encoding one envelope,
    # which every hop pays anyway.
    started = time.perf_counter()
    for _ in range(hops):
        CODEC.encode(reply, "avro")
    encode = (time.perf_counter() - started) / hops
    return {
        "hops": 2 * hops,
        "us_per_hop": round(per_hop * 1e6, 2),
        "us_per_avro_encode": round(encode * 1e6, 2),
    }


def buffer_run(n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    ids = [f"m{i}" for i in range(n)]
    causes = {m: rng.sample(ids[:i], k=min(i, rng.randint(0, 3))) for i, m in enumerate(ids)}
    order = ids[:]
    # Reordered, not shuffled: each message moves up to 50 places (what partitions do).
    order.sort(key=lambda m: int(m[1:]) + rng.uniform(0, 50))
    buf: CausalBuffer[str] = CausalBuffer(capacity=n, timeout_s=1e9)
    offered_at: dict[str, int] = {}
    waits: list[int] = []
    started = time.perf_counter()
    for step, m in enumerate(order):
        offered_at[m] = step
        for r in buf.offer(m, m, causes[m], float(step)):
            if r.held_s > 0:
                waits.append(int(r.held_s))
    took = time.perf_counter() - started
    return {
        "messages": n,
        "offers_per_s": round(n / took),
        "waited": len(waits),
        "wait_offers_median": statistics.median(waits) if waits else 0,
        "wait_offers_max": max(waits, default=0),
        "max_held": buf.stats.max_held,
        "gaps": buf.stats.gaps,
    }


def oracle_run(tasks: int) -> dict[str, Any]:
    records: list[LogRecord] = []
    offsets: dict[str, int] = {}
    for t in range(tasks):
        stampers = {who: Stamper(who) for who in ("planner-0", "coder-1", "consensus-0")}
        tid = f"task-{t}"

        def send(
            who: str,
            topic: str,
            body: Any,
            because: Any = None,
            tid: str = tid,
            stampers: dict[str, Stamper] = stampers,
        ) -> Any:
            role = who.split("-")[0]
            sender = Sender(role=role, instance=who)
            env = Envelope.new(body, sender=sender, task_id=tid)
            token = HANDLING.set(because)
            env = stampers[who].stamp(topic, env)
            HANDLING.reset(token)
            for s in stampers.values():
                s.observe(topic, env)
            offset = offsets.get(topic, 0)
            offsets[topic] = offset + 1
            records.append(LogRecord(topic, 0, offset, env))
            return env

        sub = send("planner-0", "synod.task-events", TaskSubmitted(goal="g"))
        done = send("coder-1", "synod.task-events", StepCompleted(step_id="s1"), sub)
        ask = send(
            "planner-0",
            "synod.task-events",
            VoteRequested(
                proposal_id=f"p{t}",
                candidates=[{"candidate_id": "c1", "content": "x"}],
                electorate=["coder-1"],
            ),
            done,
        )
        vote = send(
            "coder-1", "synod.votes", Vote(proposal_id=f"p{t}", voter="coder-1", choice="c1"), ask
        )
        decision = Decision(
            decision_id=f"p{t}/d", proposal_id=f"p{t}", ballot=1, outcome="c1", quorum=1
        )
        dec = send("consensus-0", "synod.task-events", decision, vote)
        send("planner-0", "synod.task-events", TaskCompleted(result="r", plan_id="p"), dec)
    started = time.perf_counter()
    report = check(records)
    took = time.perf_counter() - started
    return {
        "tasks": tasks,
        "records": len(records),
        "seconds": round(took, 3),
        "records_per_s": round(len(records) / took),
        "ok": report.ok,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    scale = 1 if args.quick else 10
    started = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "ordering",
        "machine": machine_info(),
        "envelope_bytes": [envelope_bytes(n) for n in (0, 5, 20, 100)],
        "stamping": stamp_cost(2_000 * scale),
        "buffer": buffer_run(2_000 * scale, args.seed),
        "oracle": oracle_run(200 * scale),
    }
    report["elapsed_s"] = round(time.perf_counter() - started, 2)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    m = report["machine"]
    print(f"machine: {m['cores']} cores, {m['cpu']}; Python {m['python']}; synod {m['synod']}")
    print("envelope bytes (Avro, StepCompleted with a 200-char output):")
    for row in report["envelope_bytes"]:
        print(
            f"  {row['participants']:>3} participants: {row['stamped']:>5} B "
            f"(+{row['clock_bytes']} B over unstamped {row['unstamped']} B)"
        )
    s = report["stamping"]
    print(
        f"stamp + merge: {s['us_per_hop']} us per hop over {s['hops']} hops "
        f"(one Avro encode: {s['us_per_avro_encode']} us)"
    )
    b = report["buffer"]
    print(
        f"causal buffer: {b['offers_per_s']} offers/s over {b['messages']} reordered messages; "
        f"{b['waited']} waited (median {b['wait_offers_median']}, max {b['wait_offers_max']} "
        f"offers), at most {b['max_held']} held, {b['gaps']} gaps"
    )
    o = report["oracle"]
    print(
        f"synod check oracle: {o['records']} records of {o['tasks']} tasks in {o['seconds']} s "
        f"({o['records_per_s']} records/s), ok={o['ok']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
