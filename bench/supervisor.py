"""Benchmark: the supervisor's failure detector in virtual time (offline, seeded).

Why phi-accrual rather than a fixed timeout, in numbers. Simulated instances
send a heartbeat every second with jitter (normal, sd 50 ms) and, with a
small chance per beat, a pause (GC, a rebalance, a loaded host: uniform 1-4 s).
For each detector setting it reports:

- false suspicions per instance-hour over live instances (each one would be
  a needless restart), and
- detection latency: from a death (the last heartbeat) to the first tick
  (every 1 s, as the supervisor ticks) at which the instance is suspected.

Settings: phi-accrual through the supervisor core's own detector (threshold 8,
several acceptable pauses) and fixed timeouts. Deterministic for a seed.
Prints a table; with --json exactly one JSON document. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from machine import machine_info  # bench/machine.py; bench/ is not a package
from synod.core.resilience.detector import PhiAccrualDetector


def arrivals(rng: random.Random, seconds: float, pause_p: float, every: float) -> list[float]:
    t, out = 0.0, []
    while t < seconds:
        out.append(t)
        gap = every + rng.gauss(0.0, 0.05)
        if rng.random() < pause_p:
            gap += rng.uniform(1.0, 4.0)
        t += max(0.01, gap)
    return out


@dataclass(frozen=True)
class PhiSetting:
    pause_s: float
    threshold: float = 8.0

    @property
    def label(self) -> str:
        return f"phi>={self.threshold:g}, pause {self.pause_s:g} s"

    def make(self) -> PhiAccrualDetector:
        return PhiAccrualDetector(acceptable_pause_s=self.pause_s, min_std_s=0.5)


def run_phi(setting: PhiSetting, beats: list[float], ticks: list[float]) -> list[float]:
    """Tick times at which the instance was suspected."""
    d = setting.make()
    out, i = [], 0
    for now in ticks:
        while i < len(beats) and beats[i] <= now:
            d.heartbeat("x", beats[i])
            i += 1
        if d.phi("x", now) >= setting.threshold:
            out.append(now)
    return out


def run_timeout(timeout_s: float, beats: list[float], ticks: list[float]) -> list[float]:
    out, i, last = [], 0, 0.0
    for now in ticks:
        while i < len(beats) and beats[i] <= now:
            last = beats[i]
            i += 1
        if now - last > timeout_s:
            out.append(now)
    return out


def measure(
    seed: int, instances: int, hours: float, pause_p: float, every: float
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    seconds = hours * 3600
    lives = [arrivals(rng, seconds, pause_p, every) for _ in range(instances)]
    settings: list[tuple[str, Callable[[list[float], list[float]], list[float]]]] = []
    for pause in (1.0, 3.0):
        phi = PhiSetting(pause)
        settings.append((phi.label, partial(run_phi, phi)))
    for timeout in (3.0, 5.0, 7.0):
        settings.append((f"timeout {timeout:g} s", partial(run_timeout, timeout)))
    rows = []
    for label, run in settings:
        false = 0
        latencies = []
        for beats in lives:
            ticks = [float(s) for s in range(1, int(seconds) + 1)]
            flagged = set(run(beats, ticks))
            # Count episodes (a restart each), not ticks: a run of suspected ticks is one.
            false += sum(1 for t in flagged if t - 1.0 not in flagged)
            # The instance dies after its last beat in the first hour's middle.
            death = beats[len(beats) // 2]
            alive = [b for b in beats if b <= death]
            after = [death + s for s in range(1, 121)]
            ticks_to = [float(s) for s in range(1, int(death) + 1)] + after
            suspected = [t for t in run(alive, ticks_to) if t > death]
            latencies.append(suspected[0] - death if suspected else float("inf"))
        latencies.sort()
        rows.append(
            {
                "detector": label,
                "false_suspicions_per_instance_hour": round(false / (instances * hours), 3),
                "detect_p50_s": round(latencies[len(latencies) // 2], 2),
                "detect_max_s": round(latencies[-1], 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--pause-p", type=float, default=0.002, help="chance of a pause per beat")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--every", type=float, default=1.0, help="heartbeat interval (s); try 2.5 for a slow role"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.seed, args.instances, args.hours, args.pause_p, args.every)
    report = {"machine": machine_info(), "params": vars(args), "rows": rows}
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
        return
    print(
        f"{args.instances} instances x {args.hours:g} h, {args.every:g} s heartbeats, "
        "jitter sd 50 ms, "
        f"pause chance {args.pause_p:g}/beat (1-4 s), ticks every 1 s, seed {args.seed}"
    )
    print(f"{'detector':<28}{'false/inst-h':>14}{'detect p50':>12}{'detect max':>12}")
    for r in rows:
        print(
            f"{r['detector']:<28}{r['false_suspicions_per_instance_hour']:>14}"
            f"{r['detect_p50_s']:>11}s{r['detect_max_s']:>11}s"
        )


if __name__ == "__main__":
    main()
