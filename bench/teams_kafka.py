"""The three team modes over real Kafka: `synod team run` on paper projects, services as processes.

For each project and each mode (central, claim, synod), runs the project R
times on N coder slots (`run_once`, as `synod team run` does) against the
services started by `LocalRun` on a local broker, sim backend with the
latency given (default lognormal, mean 0.5 s, sigma 0.5, which is the
bench/teams.py shape at a scale where Kafka's round trips matter less).
Prints a table (mean over runs) or, with --json, one JSON document with every
run's report. Asserts nothing about time.

    .venv/bin/python bench/teams_kafka.py [--agents 3] [--repeat 2] [--json] [PROJECT ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from synod.cli.teamrun import MODES, run_once
from synod.core.plan.dag import load_project
from synod.core.plan.report import RunReport
from synod.dev import localkafka
from synod.dev.localrun import LocalRun

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine_info  # bench/ is not a package

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROJECTS = [ROOT / "tests/e2e/data/p02.json", ROOT / "tests/e2e/data/p09.json"]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def bench(
    projects: list[Path], agents: int, repeat: int, latency: str, run_dir: Path, bootstrap: str
) -> list[RunReport]:
    os.environ["SYNOD_LLM_BACKEND"] = "sim"
    os.environ["SYNOD_LLM_SIM_LATENCY"] = latency
    run = LocalRun(
        bootstrap=bootstrap,
        prefix=f"bench{uuid.uuid4().hex[:6]}.",
        run_dir=run_dir,
        gateway_port=localkafka.free_port(),
        replicas={"consensus": 1, "planner": 1, "coder": agents, "reviewer": 3},
    )
    reports: list[RunReport] = []
    try:
        await run.start()
        await run.wait_ready()
        assert run.bootstrap is not None
        for path in projects:
            plan = load_project(path)
            for mode in MODES:
                for i in range(repeat):
                    report, _ = await run_once(
                        plan,
                        bootstrap=run.bootstrap,
                        prefix=run.prefix,
                        agents=agents,
                        mode=mode,
                        task_id=f"bench-{path.stem}-{mode}-{i}-{uuid.uuid4().hex[:6]}",
                        timeout_s=600,
                    )
                    _log(f"{path.stem} {mode} run {i}: makespan {report.makespan_s:.2f} s")
                    reports.append(report.__class__(**{**report.to_dict(), "project": path.stem}))
    finally:
        run.stop()
    return reports


def table(reports: list[RunReport]) -> str:
    keys = sorted({(r.project, r.mode) for r in reports})
    lines = [
        f"{'project':8} {'mode':8} {'n':>2} {'makespan':>9} {'speedup':>8} {'amdahl':>7} "
        f"{'graph':>7} {'clairv':>7} {'vs cl':>6} {'msgs':>5} {'blocked':>7} {'waits':>5} "
        f"{'hedges':>6} {'cancel':>6} {'lost':>4}"
    ]
    for project, mode in keys:
        rs = [r for r in reports if (r.project, r.mode) == (project, mode)]

        def mean(field: str, rs: list[RunReport] = rs) -> float:
            return statistics.fmean(float(getattr(r, field)) for r in rs)

        lines.append(
            f"{project:8} {mode:8} {rs[0].n:>2} {mean('makespan_s'):>8.2f}s "
            f"{mean('speedup'):>8.2f} {mean('amdahl_speedup'):>7.2f} "
            f"{mean('graph_bound_s'):>6.2f}s {mean('clairvoyant_makespan_s'):>6.2f}s "
            f"{mean('vs_clairvoyant'):>6.2f} {mean('messages'):>5.0f} "
            f"{mean('blocked_claims'):>7.1f} {mean('waits'):>5.1f} {mean('hedges'):>6.1f} "
            f"{mean('cancels'):>6.1f} {mean('lost_writes'):>4.0f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", nargs="*", type=Path, default=DEFAULT_PROJECTS)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--latency", default="lognormal:0.5:0.5")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="synod-bench-teams-") as tmp:
        info = localkafka.start(Path(tmp) / "kafka")
        try:
            reports = asyncio.run(
                bench(
                    args.projects, args.agents, args.repeat, args.latency, Path(tmp), info.bootstrap
                )
            )
        finally:
            localkafka.stop(Path(tmp) / "kafka")
    machine = machine_info(kafka=info.version)
    if args.json:
        doc = {
            "machine": machine,
            "latency": args.latency,
            "runs": [{**r.to_dict(), "vs_clairvoyant": r.vs_clairvoyant} for r in reports],
        }
        print(json.dumps(doc, sort_keys=True))
    else:
        print(
            f"# bench/teams_kafka.py on {machine['cores']} cores, {machine['cpu']}, "
            f"Python {machine['python']}, synod {machine['synod']}; sim latency {args.latency}, "
            f"{args.agents} coders, {args.repeat} runs per cell (means)"
        )
        print(table(reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
