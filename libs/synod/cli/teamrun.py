"""Run a project as one task through the Kafka services and measure it.

The project goes in as a TaskSubmitted carrying the plan, so the planner skips
LLM planning; the labels `team.mode` and `team.agents` say how it schedules
the steps on the coder pool (`synod.core.plan.teampolicy`): `synod` sends ready
steps critical path first and hedges stragglers, `central` deals the steps to
N slots up front, `claim` lets N slots claim steps from a shared list. The
run's numbers come from the task's own log on synod.task-events (`RunLog`).

Consumes `synod.heartbeats` (which coder instances are alive), the run's task
log on `synod.task-events`, and the task's records on `synod.workspace` (the
files as the topic holds them, to count lost and concurrent writes). Produces
one `TaskSubmitted` with an explicit plan on `synod.tasks`. Guarantees: a run
is one task (its id names project, mode, agents, the invocation and the run
number; the submission's message id is derived from it), and the report is
computed only from what the task's log and workspace records hold, so reading
them again gives the same numbers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiokafka.errors import KafkaError

from synod.cli.follow import RunLog
from synod.core.plan.dag import Plan
from synod.core.plan.report import RunReport
from synod.core.plan.teampolicy import TEAM_MODES
from synod.errors import BrokerError, SynodError
from synod.ids import derived_id
from synod.transport import Publisher
from synod.transport.reader import PartitionReader, Since, decode, read_to_end, topic_partitions
from synod.transport.topics import HEARTBEATS, TASK_EVENTS, TASKS, topic_name
from synod.transport.workspace import materialise
from synod.wire import Codec, Envelope, Heartbeat, Sender, TaskSubmitted

MODES = TEAM_MODES


class TeamError(SynodError):
    """A run that cannot start or did not finish (bad mode, too few coders, timeout)."""

    error_class = "permanent"


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise TeamError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")


def submission(
    plan: Plan,
    task_id: str,
    instance: str,
    agents: int,
    tests: dict[str, str] | None = None,
    mode: str = "synod",
) -> Envelope[TaskSubmitted]:
    body = TaskSubmitted(
        goal=(plan.description or plan.name or "project")[:4_000] or "project",
        plan=list(plan),
        # team.agents is the team's size: slots in central and claim mode, a cap
        # on attempts in flight in synod mode.
        labels={"team.project": plan.name, "team.mode": mode, "team.agents": str(agents)},
        # The reviewers run them on the workspace before they accept the answer.
        tests=tests or None,
    )
    return Envelope.new(
        body,
        sender=Sender(role="client", instance=instance),
        task_id=task_id,
        message_id=derived_id(task_id, "submitted"),
    )


async def running_coders(bootstrap: str, prefix: str, window_s: float = 60.0) -> set[str]:
    """Coder instances whose newest heartbeat in the last `window_s` says running."""
    topic = topic_name(HEARTBEATS, prefix)
    since = Since(int((time.time() - window_s) * 1000))
    records = await read_to_end(
        bootstrap, await topic_partitions(bootstrap, [topic]), start=since, timeout_s=30.0
    )
    latest: dict[str, Heartbeat] = {}
    for got in decode(records).received:
        beat = got.envelope.body
        if isinstance(beat, Heartbeat):
            latest[beat.instance] = beat
    return {i for i, b in latest.items() if b.role == "coder" and b.state == "running"}


async def run_once(
    plan: Plan,
    *,
    bootstrap: str,
    prefix: str,
    agents: int,
    mode: str,
    task_id: str,
    timeout_s: float = 600.0,
    instance: str = "team-cli",
    on_event: Callable[[Envelope[Any]], None] | None = None,
    tests: dict[str, str] | None = None,
) -> tuple[RunReport, RunLog]:
    """Submit the plan as task `task_id`, follow its log to the end, report."""
    check_mode(mode)
    coders = await running_coders(bootstrap, prefix)
    if len(coders) < agents:
        raise TeamError(
            f"--agents {agents} needs {agents} running coder instances; heartbeats show "
            f"{len(coders)} ({', '.join(sorted(coders)) or 'none'}); "
            f"start more, e.g. `synod up --replicas coder={agents}`"
        )
    envelope = submission(plan, task_id, instance, agents, tests, mode)
    events = topic_name(TASK_EVENTS, prefix)
    partitions = await topic_partitions(bootstrap, [events], key=task_id.encode())
    codec = Codec()
    reader = PartitionReader(bootstrap, client_id="synod-team")
    publisher = Publisher(bootstrap, client_id="synod-team")
    await reader.start()
    try:
        await publisher.start()
    except (KafkaError, OSError) as exc:
        await reader.stop()
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    log = RunLog(task_id)
    try:
        await reader.assign(partitions)
        await publisher.publish(topic_name(TASKS, prefix), envelope)
        deadline = time.monotonic() + timeout_s
        while not log.done:
            if time.monotonic() > deadline:
                raise TeamError(
                    f"task {task_id} did not finish within {timeout_s:g} s "
                    f"({len(log.winners)} of {len(plan)} steps done)"
                )
            for r in await reader.poll(0.5):
                try:
                    seen = codec.decode(r.value)
                except SynodError:
                    continue
                log.apply(seen)
                if on_event is not None and seen.task_id == task_id:
                    on_event(seen)
    finally:
        await publisher.stop()
        await reader.stop()
    # The workspace as the topic holds it: a planned file missing from it is a
    # lost write; the hedged losers' writes are left out (first result wins).
    space = await materialise(bootstrap, prefix, task_id, winners=log.winner_request)
    # Lost: a planned file neither settled nor in conflict, or an accepted write
    # the files no longer hold. Detected: concurrent siblings and fenced writes.
    lost = len(space.lost) + sum(
        1
        for step in plan
        for path in step.files
        if path not in space.files and path not in space.conflicted
    )
    # Tests passed as the reviewers found them on the answer they decided on (the
    # outcome), not a run of our own: None when the task had none or nobody ran them.
    report = log.report(
        plan,
        mode=mode,
        n=agents,
        concurrent_writes=space.stats.concurrent_writes + space.fenced,
        lost_writes=lost,
        tests_passed=log.tests_passed,
    )
    report = replace(
        report,
        conflicts_resolved=space.stats.conflicts_resolved,
        writes_fenced=space.fenced,
    )
    return report, log


def run_sync(plan: Plan, **kwargs: Any) -> tuple[RunReport, RunLog]:
    return asyncio.run(run_once(plan, **kwargs))
