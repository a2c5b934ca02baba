"""Client commands of `synod`: submit a task, follow it, read its status, watch all tasks.

They talk to Kafka directly, not through the gateway: a task goes to
`synod.tasks` as the short form's envelope (so the same task id is the same
message from every entry point), and a task is followed by reading its
partition of `synod.task-events` and `synod.results` from the beginning with a
group-less consumer, folded into a `TaskView`.

    synod submit GOAL [--task-id ID] [--reviewers N] [--policy P] [--plan FILE]
                      [--wait] [--timeout S] [--json] [--bootstrap B]
    synod status ID [--json] [--bootstrap B]
    synod watch [--json] [--bootstrap B]

Built on `synod.client` (so scripts need not shell out to the CLI). Without
--bootstrap or SYNOD_BOOTSTRAP they use the broker of a running `synod up`.
Merged into the `synod` app by `synod.cli.main`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast, get_args

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from synod.cli.output import BootstrapOption, JsonOption, emit, fail
from synod.client import AsyncClient, Cluster, TaskReader, find_cluster
from synod.client.api import submission
from synod.core.ordering.timeline import timeline
from synod.core.taskview import TaskView
from synod.errors import SynodError
from synod.transport.topics import RESULTS, TASK_EVENTS, topic_name
from synod.wire import (
    Decision,
    Envelope,
    PlanProposed,
    PlanStep,
    Sender,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    Vote,
    VoteRequested,
)
from synod.wire.messages import Budget, PolicyName

app = typer.Typer()  # submit, status, watch: merged into the top level by synod.cli.main

_POLICIES: tuple[str, ...] = get_args(PolicyName)
_UNKNOWN_TOPIC = 3  # Kafka error code UNKNOWN_TOPIC_OR_PARTITION
_POLL_MS = 200


# ---------------------------------------------------------------- output


def _usage(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code=2)


# ---------------------------------------------------------------- progress


class _Progress:
    """Prints a task's events on stderr as they arrive, each once, in log order."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.shown: set[str] = set()
        self.accepted = False

    def show(self, view: TaskView, *, final: bool = False) -> None:
        for envelope, log_offset in view.entries():
            if envelope.message_id in self.shown:
                if envelope.type == "TaskSubmitted" and log_offset is not None:
                    self._accepted()
                continue
            if log_offset is None and envelope.type != "TaskSubmitted" and not final:
                break  # read on synod.results ahead of the log: wait for the log's order
            self.shown.add(envelope.message_id)
            line = _describe(envelope)
            if line:
                self.console.print(line, highlight=False)
            if envelope.type == "TaskSubmitted" and log_offset is not None:
                self._accepted()

    def _accepted(self) -> None:
        if not self.accepted:
            self.accepted = True
            self.console.print("[dim]accepted: the task is in its log; planning[/dim]")


def _describe(envelope: Envelope[Any]) -> str | None:
    body = envelope.body
    if isinstance(body, TaskSubmitted):
        return f"submitted: {escape(_short(body.goal, 100))}"
    if isinstance(body, PlanProposed):
        steps = ", ".join(f"{s.step_id} ({s.role})" for s in body.steps[:8])
        more = f" and {len(body.steps) - 8} more" if len(body.steps) > 8 else ""
        return f"plan {escape(body.plan_id)}: {len(body.steps)} steps: {escape(steps)}{more}"
    if isinstance(body, StepRequested):
        return f"[dim]step {escape(body.step_id)} requested ({body.role})[/dim]"
    if isinstance(body, StepCompleted):
        return (
            f"[green]✓[/green] step {escape(body.step_id)} completed "
            f"in {body.duration_s:.1f}s: {escape(_short(body.output, 80))}"
        )
    if isinstance(body, StepFailed):
        return (
            f"[red]✗[/red] step {escape(body.step_id)} failed ({body.error_class}): "
            f"{escape(_short(body.error, 120))}"
        )
    if isinstance(body, VoteRequested):
        return (
            f"vote requested on {escape(body.proposal_id)} (ballot {body.ballot}, {body.policy}): "
            f"{len(body.candidates)} candidate(s), electorate {escape(', '.join(body.electorate))}"
        )
    if isinstance(body, Vote):
        return f"[dim]vote from {escape(body.voter)}: {body.kind}[/dim]"
    if isinstance(body, Decision):
        tally = ", ".join(f"{k}={v:g}" for k, v in sorted(body.tally.items()))
        provisional = " [yellow](provisional)[/yellow]" if body.provisional else ""
        return (
            f"decision on {escape(body.proposal_id)}: {escape(body.outcome)} "
            f"(tally {escape(tally) or '-'}, quorum {body.quorum}){provisional}"
        )
    if isinstance(body, TaskCompleted):
        return f"[green bold]completed[/green bold] in {body.duration_s:.1f}s"
    if isinstance(body, TaskFailed):
        return f"[red bold]failed[/red bold] ({body.error_class}): {escape(body.reason)}"
    return None


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# ---------------------------------------------------------------- synod submit


def _read_plan(path: Path) -> list[PlanStep]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _usage(f"--plan {path}: not a readable JSON file: {exc}") from None
    steps = doc.get("steps") if isinstance(doc, dict) else doc
    try:
        return TypeAdapter(list[PlanStep]).validate_python(steps)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise _usage(
            f"--plan {path}: expected a list of steps (or {{'steps': [...]}}); "
            f"at {where}: {first['msg']}"
        ) from None


@app.command("submit")
def submit_command(
    goal: Annotated[str, typer.Argument(help="what the team should do")],
    task_id: Annotated[
        str | None, typer.Option("--task-id", help="the task's id (default: a new UUID)")
    ] = None,
    reviewers: Annotated[
        int, typer.Option(min=1, max=31, help="reviewers voting on the answer")
    ] = 3,
    policy: Annotated[str, typer.Option(help=f"voting policy: {', '.join(_POLICIES)}")] = (
        "majority"
    ),
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="a JSON file with the task's plan: a list of steps"),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="follow the task and print its result")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="with --wait: give up after this many seconds")
    ] = 600.0,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="budget: tokens the task may spend")
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option("--max-cost", help="budget: US dollars the task may spend")
    ] = None,
    max_calls: Annotated[
        int | None, typer.Option("--max-calls", help="budget: model calls the task may make")
    ] = None,
    on_exhausted: Annotated[
        str, typer.Option("--on-exhausted", help="when spent: fail, escalate or warn")
    ] = "fail",
    as_json: JsonOption = False,
    bootstrap: BootstrapOption = None,
) -> None:
    """Submit a task to synod.tasks; with --wait, follow it to its outcome.

    Exit status with --wait: 0 when the task completed, 1 when it failed or the
    wait timed out.
    """
    if policy not in _POLICIES:
        raise _usage(f"--policy must be one of {', '.join(_POLICIES)}, not {policy!r}")
    steps = _read_plan(plan) if plan is not None else None
    task_id = task_id or uuid.uuid4().hex
    if not 1 <= len(task_id) <= 200:
        raise _usage("--task-id must be 1 to 200 characters")
    try:
        limits = (max_tokens, max_cost, max_calls)
        budget = (
            Budget(
                max_tokens=max_tokens,
                max_cost_usd=max_cost,
                max_model_calls=max_calls,
                on_exhausted=cast(Any, on_exhausted),
            )
            if any(x is not None for x in limits)
            else None
        )
        body = TaskSubmitted(
            goal=goal,
            reviewers=reviewers,
            policy=cast(PolicyName, policy),
            plan=steps,
            budget=budget,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _usage(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    cluster = find_cluster(bootstrap)
    instance = os.environ.get("SYNOD_INSTANCE") or f"cli-{socket.gethostname()}"
    envelope = submission(task_id, body, Sender(role="client", instance=instance))
    stderr = Console(stderr=True)
    try:
        code = asyncio.run(_submit(envelope, cluster, wait, timeout, as_json, stderr))
    except SynodError as exc:
        raise fail(str(exc), as_json) from None
    raise typer.Exit(code=code)


async def _submit(
    envelope: Envelope[TaskSubmitted],
    cluster: Cluster,
    wait: bool,
    timeout_s: float,
    as_json: bool,
    stderr: Console,
) -> int:
    assert envelope.task_id is not None
    task_id = envelope.task_id
    async with AsyncClient(cluster=cluster, instance=envelope.sender.instance) as client:
        sent = await client.submit_envelope(envelope)
        if not wait:
            if as_json:
                emit(asdict(sent))
            else:
                print(task_id)
            return 0
        stderr.print(f"task [bold]{escape(task_id)}[/bold] submitted to {escape(sent.topic)}")
        progress = _Progress(stderr)
        view: TaskView | None = None
        try:
            with stderr.status("waiting for the team…", spinner="dots") as spinner:

                def shown(current: TaskView) -> None:
                    nonlocal view
                    view = current
                    progress.show(current, final=current.terminal)
                    spinner.update(f"{current.state}…")

                view = await client.wait(task_id, timeout_s, on_change=shown, known=envelope)
            finished = True
        except TimeoutError:
            finished = False
    if view is None:
        view = TaskView(task_id)
        view.apply(envelope)
    if as_json:
        emit(view.to_json())
    if not finished:
        print(
            f"error: task {task_id} did not finish within {timeout_s:g}s "
            f"(state: {view.state}); follow it with `synod status {task_id}`",
            file=sys.stderr,
        )
        return 1
    status = view.status()
    if status.state == "completed":
        if not as_json:
            print(status.result or "")
        return 0
    reason = status.failure.reason if status.failure else "unknown"
    print(f"error: task {task_id} failed: {reason}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------- synod status


@app.command("status")
def status_command(
    task_id: Annotated[str, typer.Argument(help="the task's id")],
    as_json: JsonOption = False,
    bootstrap: BootstrapOption = None,
    timeline: Annotated[
        bool,
        typer.Option(
            "--timeline", help="also show the events in causal order, concurrent branches marked"
        ),
    ] = False,
) -> None:
    """Print a task's status, read from synod.task-events and synod.results."""
    cluster = find_cluster(bootstrap)
    try:
        view = asyncio.run(_read_task(cluster, task_id))
    except SynodError as exc:
        raise fail(str(exc), as_json) from None
    if view is None:
        raise fail(
            f"no task {task_id!r} in {topic_name(TASK_EVENTS, cluster.prefix)} or "
            f"{topic_name(RESULTS, cluster.prefix)}",
            as_json,
        )
    if as_json:
        doc = view.to_json()
        if timeline:
            doc["timeline"] = causal_timeline(view)
        emit(doc)
        return
    _print_status(Console(), view)
    if timeline:
        _print_timeline(Console(), view)


def causal_timeline(view: TaskView) -> list[dict[str, Any]]:
    """The task's events in causal order: depth, what each directly follows, what it is
    concurrent with (message ids), and its clocks."""
    events = view.events()
    out = []
    for row in timeline(events):
        e = events[row.index]
        out.append(
            {
                "message_id": e.message_id,
                "type": e.type,
                "sender": e.sender.instance,
                "depth": row.depth,
                "after": [events[i].message_id for i in row.after],
                "concurrent_with": [events[i].message_id for i in row.concurrent],
                "vclock": e.vclock,
                "lamport": e.lamport,
                "hlc": e.hlc,
                "causes": e.causes,
                "causal_gap": e.causal_gap,
            }
        )
    return out


def _print_timeline(console: Console, view: TaskView) -> None:
    rows = causal_timeline(view)
    number = {r["message_id"]: i + 1 for i, r in enumerate(rows)}
    per_depth: dict[int, int] = {}
    for r in rows:
        per_depth[r["depth"]] = per_depth.get(r["depth"], 0) + 1
    console.print("causal timeline ([bold]||[/bold]: concurrent with the rows of its depth)")
    table = Table(box=None, pad_edge=False)
    for column in ("#", "DEPTH", "EVENT", "SENDER", "AFTER", "VCLOCK"):
        table.add_column(column)
    for i, r in enumerate(rows):
        branch = "||" if per_depth[r["depth"]] > 1 else ""
        clock = ",".join(f"{k}:{v}" for k, v in sorted(r["vclock"].items()))
        gap = f" [red]causal_gap {len(r['causal_gap'])}[/red]" if r["causal_gap"] else ""
        table.add_row(
            str(i + 1),
            f"{r['depth']} {branch}",
            escape(r["type"]) + gap,
            escape(r["sender"]),
            ",".join(str(number[m]) for m in r["after"] if m in number) or "-",
            escape(clock or "-"),
        )
    console.print(table)


async def _read_task(cluster: Cluster, task_id: str) -> TaskView | None:
    async with AsyncClient(cluster=cluster) as client:
        return await client.view(task_id)


def _print_status(console: Console, view: TaskView) -> None:
    s = view.status()
    colour = {"completed": "green", "failed": "red"}.get(s.state, "yellow")
    settled = f" ({s.settlement})" if s.settlement else ""
    console.print(
        f"[bold]{escape(s.task_id)}[/bold]  [{colour}]{s.state}{settled}[/{colour}]"
        + (f"  mode {s.partition_mode}" if s.partition_mode else "")
    )
    console.print(f"goal: {escape(_short(s.goal, 200))}")
    console.print(f"consistency: {s.consistency}")
    board = s.blackboard
    if board is not None:
        how = ", reconciled" if board.reconciled else ""
        left = f", in conflict: {escape(', '.join(board.conflicts))}" if board.conflicts else ""
        console.print(f"blackboard: {board.facts} facts ({board.published} published{how}{left})")
        for key, value in board.values.items():
            console.print(f"  {escape(key)} = {escape(_short(value, 100))}")
    if s.steps:
        table = Table(box=None, pad_edge=False)
        for column in ("STEP", "ROLE", "STATUS", "TRIES", "SECONDS", "OUTPUT"):
            table.add_column(column)
        for step in s.steps:
            table.add_row(
                escape(step.step_id),
                step.role,
                step.status,
                str(step.attempts),
                f"{step.duration_s:.1f}" if step.duration_s is not None else "-",
                escape(_short(step.output_preview or step.error, 60)),
            )
        console.print(table)
    for vote in s.votes:
        decided = vote.decision
        outcome = (
            f"-> {escape(decided.outcome)} (quorum {decided.quorum}"
            f"{', provisional' if decided.provisional else ''})"
            if decided
            else "(open)"
        )
        console.print(
            f"vote {escape(vote.proposal_id)} ballot {vote.ballot}, "
            f"electorate {escape(', '.join(vote.electorate))} {outcome}"
        )
    if s.usage.calls or s.usage.input_tokens:
        console.print(
            f"usage: {s.usage.calls} calls, {s.usage.input_tokens} in / "
            f"{s.usage.output_tokens} out tokens, ${s.usage.cost_usd:.4f}"
        )
    if s.result is not None:
        console.print("result:", style="bold")
        console.print(s.result, markup=False, highlight=False)
    if s.failure is not None:
        console.print(f"[red]failure[/red] ({s.failure.error_class}): {escape(s.failure.reason)}")


# ---------------------------------------------------------------- synod watch


@app.command("watch")
def watch_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="print one JSON snapshot of every task and exit")
    ] = False,
    bootstrap: BootstrapOption = None,
    limit: Annotated[int, typer.Option(min=1, help="rows in the live table")] = 30,
) -> None:
    """A live table of tasks until Ctrl-C; with --json, one snapshot."""
    cluster = find_cluster(bootstrap)
    try:
        if as_json:
            views = asyncio.run(_snapshot(cluster))
            emit({"tasks": [v.to_json() for v in views]})
            return
        asyncio.run(_watch_live(cluster, limit))
    except SynodError as exc:
        raise fail(str(exc), as_json) from None


async def _snapshot(cluster: Cluster) -> list[TaskView]:
    async with AsyncClient(cluster=cluster) as client:
        return await client.tasks()


async def _watch_live(cluster: Cluster, limit: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with TaskReader(cluster.bootstrap, cluster.prefix) as reader:
            with Live(_table([], 0), auto_refresh=False, transient=False) as live:
                while not stop.is_set():
                    if await reader.poll():
                        live.update(_table(reader.index, limit), refresh=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)


def _table(views: Iterable[TaskView], limit: int) -> Table:
    table = Table(title="synod tasks (Ctrl-C to stop)", title_justify="left")
    for column in ("TASK", "STATE", "STEPS", "VOTE", "UPDATED", "GOAL / RESULT"):
        table.add_column(column, overflow="ellipsis", no_wrap=True)
    colours = {"completed": "green", "failed": "red"}
    for view in itertools.islice(views, limit):
        s = view.status()
        done = sum(step.status == "completed" for step in s.steps)
        decision = s.decision.outcome if s.decision else ("open" if s.votes else "-")
        updated = _ago(s.updated_at)
        text = s.result if s.result is not None else s.failure.reason if s.failure else s.goal
        colour = colours.get(s.state, "yellow")
        table.add_row(
            escape(_short(s.task_id, 24)),
            f"[{colour}]{s.state}[/{colour}]",
            f"{done}/{len(s.steps)}" if s.steps else "-",
            escape(decision),
            updated,
            escape(_short(text, 60)),
        )
    return table


def _ago(at: datetime | None) -> str:
    if at is None:
        return "-"
    seconds = max(0.0, (datetime.now(UTC) - at).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7_200:
        return f"{seconds / 60:.0f}m ago"
    return at.strftime("%Y-%m-%d %H:%M")


__all__ = ["TaskReader"]
