"""`synod chaos SCENARIO`: real faults and bounded load against a running team, then a report.

Exit 0 when the log passes `synod check` and no task is lost, 1 otherwise, 2 on
bad usage (an unknown or unbuilt scenario, no running team). What each
scenario does is in synod.dev.chaos and docs/chaos.md.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from synod.cli.output import JsonOption, emit
from synod.dev.chaos import SCENARIOS, ChaosError, run_chaos

app = typer.Typer()


@app.command("chaos")
def chaos(
    scenario: Annotated[str, typer.Argument(help="one of: " + ", ".join(SCENARIOS))],
    duration: Annotated[
        float, typer.Option(min=1, max=3600, help="seconds of load and faults")
    ] = 60,
    seed: Annotated[int, typer.Option(help="decides which process, when, how long")] = 0,
    rate: Annotated[float, typer.Option(min=0.01, max=100, help="tasks submitted per second")] = 1,
    settle: Annotated[
        float, typer.Option(min=0, help="seconds to wait for outcomes after the load")
    ] = 180,
    run_dir: Annotated[
        Path | None, typer.Option(help="the team's run directory (default: synod up's)")
    ] = None,
    provider_url: Annotated[
        str | None,
        typer.Option(help="provider: the fake Messages API (default: $ANTHROPIC_BASE_URL)"),
    ] = None,
    broker_dir: Annotated[
        Path | None,
        typer.Option(
            help="broker-restart: the broker's run dir (default: the one synod up started)"
        ),
    ] = None,
    toxiproxy: Annotated[
        str | None,
        typer.Option(help="partition, slow-link: the zones' toxiproxy API (synod.dev.netfaults)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Kill and pause the team's processes, fail its provider, restart its broker; check the log."""
    try:
        report = asyncio.run(
            run_chaos(
                scenario,
                duration,
                seed,
                run_dir,
                rate,
                settle,
                provider_url=provider_url,
                broker_dir=broker_dir,
                toxiproxy=toxiproxy,
            )
        )
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    doc = report.doc
    text = doc.pop("check_text")
    if as_json:
        emit(doc)
    else:
        print(
            f"{doc['scenario']} for {doc['duration_s']:g} s (seed {doc['seed']}): "
            f"{doc['tasks']} tasks ({doc['unsent']} unsent), {doc['completed']} completed, "
            f"{doc['failed']} failed, "
            f"{doc['escalated']} escalated, {doc['lost']} lost, {doc['duplicated']} duplicated; "
            f"latency p50 {doc['latency_p50_s']} s, p99 {doc['latency_p99_s']} s"
        )
        for f in doc["faults"]:
            print(
                f"  {f['at_s']:>6} s {f['kind']:<14} {f['target']:<14} "
                f"recovered after {f['recovered_after_s']} s"
            )
        print(text)
    if not report.ok:
        raise typer.Exit(code=1)
