"""Benchmark: the paper's nine projects run by simulated teams of 1-5 agents in each mode.

Offline and seeded (`synod.core.teamsim`): step durations are lognormal
(sigma 0.5, mean 1.0 per step, or a task's `estimate_s` where a project
gives one; the paper's carry none), file
writes go through the real workspace in `strong` consistency, and messages
are counted per the Kafka protocol of each mode (docs/teams.md). Seed s of a
cell is the same seed for every mode and team size, so each run's speedup is
against one agent with the same step durations, and the bounds (Amdahl for
the project's p, the graph bound, the clairvoyant list schedule) are computed
from those same durations.

Modes: `central` (pre-assigned, the paper's first team), `claim` (agents
claim from a shared list, the paper's second), `synod` (the planner
service's own task core, `synod.core.task`, in virtual time: ready steps
only, critical path first, straggler hedging, with the service's settings),
and `synod-p95`, the same core without the tail rule (hedging only past the
observed p95), to show what the tail rule buys.

Targets, reported per cell as PASS/MISS and never asserted:

- synod: mean speedup above Amdahl's bound for every n >= 2;
- synod: mean makespan within 10% of the mean clairvoyant makespan;
- every mode: messages per run grow at most linearly with n
  (mean messages at n <= n x mean messages at n = 1);
- every mode: zero lost writes in every run.

Prints a table; with --json exactly one JSON document on stdout. Exit status
is 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from machine import describe, machine_info  # bench/machine.py; bench/ is not a package
from synod.core.plan import Plan, load_project, parallel_fraction
from synod.core.plan.modes import EngineConfig
from synod.core.plan.report import RunReport
from synod.core.teamsim import SimConfig, TeamRun, load_estimates, simulate_team, team_report
from synod.errors import ConfigError

DEFAULT_TASKS = Path(__file__).resolve().parents[2] / "shared" / "paper" / "tasks"
MODES = ("central", "claim", "synod", "synod-p95")
NS = (1, 2, 3, 4, 5)

# The paper's speedups (README of ../shared/paper), n = 2..5, by mode and p.
PAPER: dict[str, dict[float, tuple[float, ...]]] = {
    "central": {0.9: (1.17, 1.72, 1.95, 1.95), 0.5: (1.12, 1.17, 1.42, 1.18),
                0.2: (0.94, 0.66, 0.69, 0.95)},
    "claim": {0.9: (1.12, 0.88, 0.89, 0.92), 0.5: (0.92, 0.90, 0.84, 0.80),
              0.2: (0.81, 0.81, 0.66, 0.65)},
}  # fmt: skip


def sim_config(mode: str, base: SimConfig) -> tuple[str, SimConfig]:
    """The engine mode and settings behind a bench mode name."""
    if mode == "synod-p95":
        strict = EngineConfig(tail_hedge_quantile=None)
        return "synod", replace(base, engine=strict)
    return mode, base


def run_cell(
    plan: Plan,
    project: str,
    mode: str,
    n: int,
    seeds: Sequence[int],
    ones: dict[int, TeamRun],
    estimates: dict[str, float] | None,
    base: SimConfig,
) -> list[RunReport]:
    engine_mode, cfg = sim_config(mode, base)
    reports = []
    for seed in seeds:
        if seed not in ones:
            ones[seed] = simulate_team(
                plan,
                1,
                engine_mode,  # type: ignore[arg-type]
                seed,
                cfg,
                estimates=estimates,
            )
        report, _ = team_report(
            plan,
            n,
            engine_mode,  # type: ignore[arg-type]
            seed,
            cfg,
            estimates=estimates,
            project=project,
            one_agent=ones[seed],
        )
        reports.append(replace(report, mode=mode))
    return reports


def mean(xs: Sequence[float]) -> float:
    return statistics.fmean(xs) if xs else math.nan


def summarise(project: str, p: float, mode: str, n: int, rs: list[RunReport]) -> dict[str, Any]:
    makespan = mean([r.makespan_s for r in rs])
    clair = mean([r.clairvoyant_makespan_s for r in rs])
    return {
        "project": project,
        "p": round(p, 2),
        "mode": mode,
        "n": n,
        "runs": len(rs),
        "speedup": mean([r.speedup for r in rs]),
        "amdahl_speedup": rs[0].amdahl_speedup,
        "graph_speedup": mean([r.graph_speedup for r in rs]),
        "makespan_s": makespan,
        "graph_bound_s": mean([r.graph_bound_s for r in rs]),
        "clairvoyant_makespan_s": clair,
        "vs_clairvoyant": makespan / clair,
        "messages": mean([r.messages for r in rs]),
        "tokens": mean([r.tokens for r in rs]),
        "concurrent_writes": mean([r.concurrent_writes for r in rs]),
        "blocked_claims": mean([r.blocked_claims for r in rs]),
        "waits": mean([r.waits for r in rs]),
        "concurrent_claims": mean([r.concurrent_claims for r in rs]),
        "hedges": mean([r.hedges for r in rs]),
        "straggler_gap_s": mean([r.straggler_gap_s for r in rs]),
        "lost_writes": sum(r.lost_writes for r in rs),
    }


def judge(cells: list[dict[str, Any]]) -> None:
    """Add the per-cell target verdicts in place (None where a target does not apply)."""
    ones = {(c["project"], c["mode"]): c["messages"] for c in cells if c["n"] == 1}
    for c in cells:
        synod = c["mode"].startswith("synod")
        c["above_amdahl"] = c["speedup"] > c["amdahl_speedup"] if synod and c["n"] >= 2 else None
        c["within_10pct"] = c["vs_clairvoyant"] <= 1.10 if synod else None
        c["messages_linear"] = c["messages"] <= c["n"] * ones[(c["project"], c["mode"])]
        c["no_lost_writes"] = c["lost_writes"] == 0


def totals(cells: list[dict[str, Any]], modes: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in modes:
        mine = [c for c in cells if c["mode"] == mode]
        verdicts: dict[str, Any] = {}
        for key in ("above_amdahl", "within_10pct", "messages_linear", "no_lost_writes"):
            vals = [c[key] for c in mine if c[key] is not None]
            if vals:
                verdicts[key] = {"pass": sum(vals), "cells": len(vals)}
        worst = max(mine, key=lambda c: c["vs_clairvoyant"])
        verdicts["worst_vs_clairvoyant"] = {
            "project": worst["project"],
            "n": worst["n"],
            "ratio": worst["vs_clairvoyant"],
        }
        out[mode] = verdicts
    return out


def paper_table(cells: list[dict[str, Any]], modes: Sequence[str]) -> list[dict[str, Any]]:
    """Speedup by mode and p, mean over the three suites, n = 2..5: the paper's table."""
    rows = []
    for mode in modes:
        for p in (0.9, 0.5, 0.2):
            row: dict[str, Any] = {"mode": mode, "p": p}
            row["speedup"] = [
                mean(
                    [
                        c["speedup"]
                        for c in cells
                        if c["mode"] == mode and c["p"] == p and c["n"] == n
                    ]
                )
                for n in NS[1:]
            ]
            row["paper"] = list(PAPER.get(mode, {}).get(p, ()))
            rows.append(row)
    for p in (0.9, 0.5, 0.2):
        amdahl = [
            mean([c["amdahl_speedup"] for c in cells if c["p"] == p and c["n"] == n])
            for n in NS[1:]
        ]
        graph = [
            mean(
                [
                    c["graph_speedup"]
                    for c in cells
                    if c["p"] == p and c["n"] == n and c["mode"] == modes[0]
                ]
            )
            for n in NS[1:]
        ]
        rows.append({"mode": "amdahl bound", "p": p, "speedup": amdahl, "paper": amdahl})
        rows.append({"mode": "graph bound", "p": p, "speedup": graph, "paper": []})
    return rows


def fmt(xs: Sequence[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in xs) if xs else "-"


def print_human(doc: dict[str, Any]) -> None:
    m = doc["machine"]
    print(f"# bench/teams.py; {describe(m)}")
    print(
        f"# {doc['repeats']} seeded runs per cell, lognormal sigma {doc['sigma']}, "
        f"{doc['consistency']} workspace, {doc['seconds']:.1f}s\n"
    )
    print("Speedup against one agent, n = 2, 3, 4, 5 (mean over the three suites and all seeds):\n")
    print("| mode | p=0.9 | p=0.5 | p=0.2 |")
    print("|---|---|---|---|")
    by = {(r["mode"], r["p"]): r for r in doc["paper_table"]}
    labels = [*doc["modes"], "amdahl bound", "graph bound"]
    for mode in labels:
        print(
            f"| {mode} | "
            + " | ".join(fmt(by[(mode, p)]["speedup"]) for p in (0.9, 0.5, 0.2))
            + " |"
        )
    for mode in (m for m in ("central", "claim") if m in doc["modes"]):
        print(
            f"| paper: {mode} | "
            + " | ".join(fmt(by[(mode, p)]["paper"]) for p in (0.9, 0.5, 0.2))
            + " |"
        )
    print()
    print(
        "| project | mode | n | speedup | amdahl | graph | makespan | clairvoyant | vs clair | "
        "msgs | conc. writes | blocked | conc. claims | hedges | gap | lost | targets |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in doc["cells"]:
        marks = []
        for key, name in (
            ("above_amdahl", "amdahl"),
            ("within_10pct", "10%"),
            ("messages_linear", "msgs"),
            ("no_lost_writes", "lost"),
        ):
            if c[key] is not None:
                marks.append(f"{name} {'PASS' if c[key] else 'MISS'}")
        print(
            f"| {c['project']} | {c['mode']} | {c['n']} | {c['speedup']:.2f} | "
            f"{c['amdahl_speedup']:.2f} | {c['graph_speedup']:.2f} | {c['makespan_s']:.2f} | "
            f"{c['clairvoyant_makespan_s']:.2f} | {c['vs_clairvoyant']:.3f} | "
            f"{c['messages']:.0f} | "
            f"{c['concurrent_writes']:.1f} | {c['blocked_claims']:.1f} | "
            f"{c['concurrent_claims']:.1f} | {c['hedges']:.1f} | {c['straggler_gap_s']:.2f} | "
            f"{c['lost_writes']} | {', '.join(marks)} |"
        )
    print("\nTargets (cells passing / cells judged):")
    for mode, v in doc["targets"].items():
        parts = [
            f"{k} {x['pass']}/{x['cells']}" for k, x in v.items() if k != "worst_vs_clairvoyant"
        ]
        w = v["worst_vs_clairvoyant"]
        parts.append(f"worst vs clairvoyant {w['ratio']:.3f} ({w['project']}, n={w['n']})")
        print(f"  {mode}: " + "; ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=Path, default=DEFAULT_TASKS, help="the paper's tasks dir")
    parser.add_argument("--repeats", type=int, default=20, help="seeded runs per cell (>= 5)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    parser.add_argument(
        "--claim-latency",
        type=float,
        default=SimConfig().claim_latency_s,
        help="seconds from reading the shared list to the claim landing (claim mode)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    files = sorted(args.tasks.glob("*/p*.json"))
    if not files:
        parser.error(f"no project files */p*.json under {args.tasks}")

    try:
        base = SimConfig(claim_latency_s=args.claim_latency)
    except ConfigError as e:
        parser.error(str(e))
    started = time.perf_counter()
    seeds = range(args.seed, args.seed + args.repeats)
    cells: list[dict[str, Any]] = []
    for path in files:
        plan = load_project(path)
        estimates = load_estimates(path)
        project = f"{path.parent.name.removeprefix('amdahl_')}/{path.stem}"
        p = parallel_fraction(plan)
        for mode in modes:
            ones: dict[int, TeamRun] = {}
            for n in NS:
                reports = run_cell(plan, project, mode, n, seeds, ones, estimates, base)
                cells.append(summarise(project, p, mode, n, reports))
    judge(cells)
    doc: dict[str, Any] = {
        "bench": "teams",
        "machine": machine_info(),
        "repeats": args.repeats,
        "seeds": [seeds.start, seeds.stop - 1],
        "sigma": base.sigma,
        "consistency": base.consistency,
        "claim_latency_s": base.claim_latency_s,
        "modes": modes,
        "cells": cells,
        "paper_table": paper_table(cells, modes),
        "targets": totals(cells, modes),
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        json.dump(doc, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print_human(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
