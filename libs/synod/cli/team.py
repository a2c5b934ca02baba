"""`synod team run`: the paper's experiment on the Kafka services.

Added to the `synod` app as `synod team` by `synod.cli.main`.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer

from synod.cli.teamrun import TeamError, check_mode, run_sync
from synod.client.cluster import find_cluster
from synod.core.plan.dag import PlanError, load_project
from synod.core.plan.report import RunReport
from synod.errors import SynodError
from synod.wire.messages import check_tests

app = typer.Typer(help="Teams of coder agents on a project (issue 8).", no_args_is_help=True)


def _line(r: RunReport) -> str:
    tests = "-" if r.tests_passed is None else ("passed" if r.tests_passed else "FAILED")
    return (
        f"{r.project} mode={r.mode} n={r.n}: makespan {r.makespan_s:.2f}s, "
        f"speedup {r.speedup:.2f} (one agent: sum of steps {r.one_agent_makespan_s:.2f}s), "
        f"Amdahl {r.amdahl_speedup:.2f}, graph bound {r.graph_bound_s:.2f}s, "
        f"clairvoyant {r.clairvoyant_makespan_s:.2f}s, messages {r.messages}, tokens {r.tokens}, "
        f"concurrent writes {r.concurrent_writes}, blocked claims {r.blocked_claims}, "
        f"central waits {r.waits}, hedges {r.hedges} ({r.cancels} cancelled), "
        f"straggler gap {r.straggler_gap_s:.2f}s, tests {tests}"
    )


def project_tests(path: Path) -> dict[str, str] | None:
    """The project's optional `tests`: {path: pytest file content}, run on the workspace."""
    tests = json.loads(path.read_text(encoding="utf-8")).get("tests")
    if tests is None:
        return None
    if not isinstance(tests, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tests.items()
    ):
        raise ValueError(f"{path}: 'tests' must map file paths to their contents")
    try:
        return check_tests(dict(tests))
    except ValueError as exc:
        raise ValueError(f"{path}: 'tests': {exc}") from None


@app.command("run")
def run_command(
    project: Annotated[Path, typer.Argument(help="a project JSON file in the paper's format")],
    agents: Annotated[int, typer.Option("--agents", "-n", min=1, help="coder agents")] = 1,
    mode: Annotated[str, typer.Option(help="central | claim | synod")] = "synod",
    repeat: Annotated[int, typer.Option(min=1, help="runs in a row")] = 1,
    timeout: Annotated[float, typer.Option(help="seconds to wait for one run")] = 600.0,
    bootstrap: Annotated[str | None, typer.Option("--bootstrap", "-b")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per run")] = False,
) -> None:
    """Run PROJECT on N running coder instances and print each run's report."""
    try:
        check_mode(mode)
        plan = load_project(project)
    except (PlanError, TeamError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    except OSError as exc:
        print(f"error: cannot read {project}: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    try:
        tests = project_tests(project)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    cluster = find_cluster(bootstrap)
    address, prefix = cluster.bootstrap, cluster.prefix
    instance = os.environ.get("SYNOD_INSTANCE") or "team-cli"
    batch = uuid.uuid4().hex[:8]
    for i in range(repeat):
        task_id = f"team-{plan.name or 'project'}-{mode}-n{agents}-{batch}-{i}"
        try:
            report, log = run_sync(
                plan,
                bootstrap=address,
                prefix=prefix,
                agents=agents,
                mode=mode,
                task_id=task_id,
                timeout_s=timeout,
                instance=instance,
                tests=tests,
            )
        except SynodError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(code=1) from None
        if log.tests_summary:  # which tests failed, as the reviewers found (stderr: not data)
            print(f"{task_id}: tests: {log.tests_summary}", file=sys.stderr)
        if as_json:
            print(json.dumps({"task_id": task_id, **report.to_dict()}, sort_keys=True))
        else:
            print(f"{task_id}: {_line(report)}")
