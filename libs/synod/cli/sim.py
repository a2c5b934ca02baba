"""`synod sim`: the whole system in one seeded simulation, checked like a real log.

One seed: run, check the `synod check` invariants on the simulated log plus
liveness, print the log's hash (same seed, same commit: same hash). With
`--seeds N`: a sweep of N seeds from `--seed`, progress on stderr. A failing
seed prints the command that replays it (shrunk with `--shrink`). Exit 0 when
every run keeps every promise, 1 on a violation, 2 on bad usage.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Annotated, Any

import typer

from synod.cli.output import JsonOption, emit
from synod.core.bugs import BUGS
from synod.core.task.carry import OutboxMode
from synod.sim import FAULTS, FaultError, FaultPlan, SimConfig, parse_faults
from synod.sim.sweep import Sweep, replay_command, run_one, shrink, sweep
from synod.sim.world import OUTBOXES

app = typer.Typer()


def _describe(result: Any) -> str:
    lines = [
        f"seed {result.seed}: {result.tasks} tasks, {result.completed} completed, "
        f"{result.failed} failed, {len(result.stuck)} stuck; {result.records} records, "
        f"{result.virtual_s:.1f} virtual s",
        result.report.text(),
    ]
    if result.stuck:
        lines.append(f"liveness: not terminal within the bound: {', '.join(result.stuck)}")
    lines.append(f"hash {result.digest}")
    return "\n".join(lines)


@app.command("sim")
def sim(
    seed: Annotated[int, typer.Option(help="the seed (the first one with --seeds)")] = 0,
    tasks: Annotated[int, typer.Option(min=1, max=50, help="tasks per run")] = 3,
    faults: Annotated[
        str, typer.Option(help="all, none, or a comma list of: " + ", ".join(sorted(FAULTS)))
    ] = "all",
    seeds: Annotated[int, typer.Option(min=1, help="run this many seeds from --seed")] = 1,
    bug: Annotated[
        list[str] | None,
        typer.Option(help="plant a deliberate bug (to see it found): " + ", ".join(sorted(BUGS))),
    ] = None,
    outbox: Annotated[
        str,
        typer.Option(help="the planner's outbox: " + " or ".join(OUTBOXES) + " (as the service's)"),
    ] = SimConfig.outbox,
    do_shrink: Annotated[
        bool, typer.Option("--shrink", help="shrink a failing seed to fewer faults and tasks")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Simulate the whole system under faults, then check its log and liveness."""
    bugs = tuple(bug or ())
    unknown = sorted(set(bugs) - BUGS.keys())
    if unknown:
        print(f"error: unknown bug(s) {unknown}; choose from {sorted(BUGS)}", file=sys.stderr)
        raise typer.Exit(code=2)
    if outbox not in OUTBOXES:
        print(f"error: --outbox {outbox}: choose from {', '.join(OUTBOXES)}", file=sys.stderr)
        raise typer.Exit(code=2)
    mode: OutboxMode = outbox
    try:
        plan = FaultPlan(faults=parse_faults(faults))
    except FaultError as exc:
        print(f"error: --faults: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    if seeds == 1:
        config = SimConfig(seed=seed, tasks=tasks, plan=plan, outbox=mode)
        result = run_one(config, bugs)
        doc = result.to_json()
        if not result.ok:
            small = shrink(config, bugs) if do_shrink else config
            doc["replay"] = replay_command(small, bugs)
        if as_json:
            emit(doc)
        else:
            print(_describe(result))
            if not result.ok:
                print(f"replay: {doc['replay']}")
        if not result.ok:
            raise typer.Exit(code=1)
        return

    def progress(at: int, so_far: Sweep) -> None:
        if so_far.seeds % 50 == 0 or so_far.seeds == seeds or not so_far.ok:
            rates = so_far.rates()
            print(
                f"{so_far.seeds}/{seeds} seeds, {len(so_far.failed)} failing, "
                f"{rates['seeds_per_s']} seeds/s, {rates['virtual_s_per_wall_s']} virtual s/s",
                file=sys.stderr,
            )

    done = sweep(seed, seeds, tasks, plan, bugs, progress, outbox=mode)
    failing = []
    for result, command in done.failed:
        if do_shrink:
            config = SimConfig(seed=result.seed, tasks=tasks, plan=plan, outbox=mode)
            command = replay_command(shrink(replace(config), bugs), bugs)
        failing.append({"seed": result.seed, "replay": command, **result.report.counts()})
    doc = {
        "ok": done.ok,
        "seeds": done.seeds,
        "failing": failing,
        "wall_s": round(done.wall_s, 2),
        "cpu_s": round(done.cpu_s, 2),
        "virtual_s": round(done.virtual_s, 1),
        "records": done.records,
        "outbox": mode,
        **done.rates(),
    }
    if as_json:
        emit(doc)
    else:
        print(
            f"{done.seeds} seeds in {done.wall_s:.1f} s ({doc['seeds_per_s']} seeds/s, "
            f"{doc['virtual_s_per_wall_s']} virtual s per wall s; "
            f"{doc['seeds_per_cpu_s']} seeds per CPU s): {len(failing)} failing"
        )
        for f in failing:
            print(f"  seed {f['seed']}: {f['replay']}")
    if not done.ok:
        raise typer.Exit(code=1)
