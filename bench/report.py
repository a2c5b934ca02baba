"""Run every benchmark of the project with --json into docs/bench/ (the input of render.py).

Sizes are bounded so the whole run stays near 15 minutes on a shared 2-core
machine; each run's command, wall time and exit status go into
docs/bench/runs.json so the document can say how each figure is reproduced.
`make bench-report` runs this, then bench/render.py in the bench venv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from machine import machine_info

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "bench"

# name -> arguments after the script. Every size is a bound on the run's time,
# chosen for a loaded 2-core machine; the scripts' defaults are larger.
RUNS: dict[str, tuple[str, list[str]]] = {
    "transport": ("bench/transport.py", []),
    "consensus": ("bench/consensus.py", ["--quick"]),
    "blackboard": ("bench/blackboard.py", []),
    "blackboard-kafka": ("bench/blackboard_kafka.py", ["--tasks", "20", "--in-flight", "5"]),
    "teams": ("bench/teams.py", ["--repeats", "5"]),
    "recovery": ("bench/recovery.py", ["--sizes", "1000,10000"]),
    "pipeline": ("bench/pipeline.py", ["--tasks", "30", "--clocks", "on"]),
    "dispatch": (
        "bench/dispatch.py",
        ["--quick", "--in-flight", "1,10", "--outbox", "ack", "--samples", "60", "--repeat", "1"],
    ),
    "cap": ("bench/cap.py", ["--tasks", "2", "--scenarios", "reviewers-1of3,planner-cut"]),
    "peers": (
        "bench/peers/run.py",
        ["--rtt", "100", "--burst", "500", "--stream", "600"],
    ),
    "sweep": ("bench/sweep.py", ["--tasks", "1000,10000", "--rounds", "3"]),
    "offsets": ("bench/offsets.py", ["--in-flight", "500,5000,20000"]),
}

TIMEOUT_S = 900


def _teams_args() -> list[str]:
    # teams.py reads the paper's projects from ../shared/paper/tasks of the
    # checkout; a worktree elsewhere names them with SYNOD_PAPER_TASKS.
    tasks = os.environ.get("SYNOD_PAPER_TASKS")
    return ["--tasks", tasks] if tasks else []


def run_one(name: str, python: str) -> dict[str, object]:
    script, args = RUNS[name]
    if name == "teams":
        args = [*args, *_teams_args()]
    cmd = [python, script, "--json", *args]
    shown = " ".join([".venv/bin/python", script, "--json", *args])
    print(f"bench-report: {shown}", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return {"command": shown, "seconds": TIMEOUT_S, "ok": False, "error": "timed out"}
    seconds = round(time.monotonic() - started, 1)
    entry: dict[str, object] = {"command": shown, "seconds": seconds, "ok": proc.returncode == 0}
    if proc.returncode != 0:
        entry["error"] = proc.stderr.strip().splitlines()[-5:]
        print(proc.stderr[-2000:], file=sys.stderr)
        return entry
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        entry.update(ok=False, error=f"not JSON: {exc}")
        return entry
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"bench-report: {name} done in {seconds} s", file=sys.stderr, flush=True)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(RUNS))
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(RUNS)
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(RUNS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    runs_path = OUT / "runs.json"
    runs = json.loads(runs_path.read_text()) if runs_path.exists() else {}
    runs.setdefault("benchmarks", {})
    load_before = os.getloadavg()
    started = time.monotonic()
    for name in names:
        runs["benchmarks"][name] = run_one(name, sys.executable)
        runs_path.write_text(json.dumps(runs, indent=2) + "\n")
    runs["report"] = {
        "seconds": round(time.monotonic() - started, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "benchmarks_run": names,
        "machine": machine_info(),
    }
    runs_path.write_text(json.dumps(runs, indent=2) + "\n")
    failed = [n for n in names if not runs["benchmarks"][n]["ok"]]
    if failed:
        print(f"bench-report: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
