"""`make demo`: the whole team on one machine, against a real Kafka.

Starts a local broker and every service as its own process (`synod up`),
submits a sample goal the way any Kafka client would (a bare JSON object on
synod.tasks), follows the task live (plan, steps, the vote request, each
reviewer's vote, the decision), prints the result, and stops everything it
started.

It prints success only for what it observed: the exit status is 0 only if a
TaskCompleted for the task was read back from synod.results.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

from synod.dev.localkafka import free_port
from synod.dev.localrun import LocalRun
from synod.errors import SynodError
from synod.transport import Publisher
from synod.transport.reader import PartitionReader, topic_partitions
from synod.transport.topics import RESULTS, TASK_EVENTS, TASKS, VOTES, topic_name
from synod.wire import (
    Codec,
    Decision,
    PlanProposed,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    Vote,
    VoteRequested,
)

GOAL = "Write fizzbuzz(n) in Python with tests"
TIMEOUT_S = 120.0


def _say(msg: str) -> None:
    print(msg, flush=True)


def _describe(envelope: Any, t0: float) -> str | None:
    body, at = envelope.body, f"{time.monotonic() - t0:6.2f}s"
    if isinstance(body, PlanProposed):
        lines = [f"{at}  plan {body.plan_id} ({len(body.steps)} steps):"]
        for s in body.steps:
            deps = f" after {', '.join(s.depends_on)}" if s.depends_on else ""
            lines.append(f"          - {s.step_id} [{s.role}] {s.title}{deps}")
        return "\n".join(lines)
    if isinstance(body, StepRequested):
        return f"{at}  step {body.step_id} -> {body.role} (attempt {envelope.attempt})"
    if isinstance(body, StepCompleted):
        return (
            f"{at}  step {body.step_id} done by {envelope.sender.instance} in "
            f"{body.duration_s:.2f}s ({body.usage.output_tokens} output tokens)"
        )
    if isinstance(body, StepFailed):
        return f"{at}  step {body.step_id} failed ({body.error_class}): {body.error[:100]}"
    if isinstance(body, VoteRequested):
        if envelope.sender.role == "planner":
            return (
                f"{at}  answer put to the vote: policy {body.policy}, "
                f"electorate {', '.join(body.electorate)}"
            )
        return f"{at}  ballot {body.ballot}: votes asked of {', '.join(body.electorate)}"
    if isinstance(body, Vote):
        choice = body.choice if body.kind == "choice" else body.kind
        return (
            f"{at}  vote from {body.voter}: {choice} (confidence {body.confidence:.2f}) "
            f"- {body.rationale[:70]}"
        )
    if isinstance(body, Decision):
        provisional = ", provisional" if body.provisional else ""
        return (
            f"{at}  decision: {body.outcome} (tally {dict(body.tally)}, quorum "
            f"{body.quorum}, {body.votes_counted} votes{provisional})"
        )
    return None


async def follow(bootstrap: str, prefix: str, task_id: str) -> Any:
    """Print the task's events as they happen; return its outcome (or None on timeout)."""
    codec = Codec()
    topics = [topic_name(t, prefix) for t in (TASK_EVENTS, VOTES, RESULTS)]
    key = task_id.encode()
    t0 = time.monotonic()
    seen: set[str] = set()
    async with PartitionReader(bootstrap, client_id="synod-demo") as reader:
        # The task's partition of each topic: every task-scoped message is keyed by it.
        await reader.assign(await topic_partitions(bootstrap, topics, key=key))
        while time.monotonic() - t0 < TIMEOUT_S:
            for r in await reader.poll(0.5):
                if r.key != key:
                    continue
                envelope = codec.decode(r.value)
                if r.topic == topics[2] and isinstance(envelope.body, TaskCompleted | TaskFailed):
                    return envelope
                if envelope.message_id in seen:
                    continue  # the same message copied to another topic
                seen.add(envelope.message_id)
                line = _describe(envelope, t0)
                if line:
                    _say(line)
    return None


async def main_async() -> int:
    run = LocalRun(prefix=f"demo{uuid.uuid4().hex[:6]}.", gateway_port=free_port())
    stop = asyncio.Event()
    try:
        await run.start()
        await run.wait_ready()
        assert run.bootstrap is not None
        _say(f"ready: {len(run.children)} services on {run.bootstrap} (logs in {run.run_dir})")
        task_id = f"demo-{uuid.uuid4().hex[:8]}"
        raw = json.dumps({"task_id": task_id, "goal": GOAL}).encode()
        async with Publisher(run.bootstrap, client_id="synod-demo") as publisher:
            await publisher.publish_raw(topic_name(TASKS, run.prefix), raw, key=task_id.encode())
        _say(f"submitted {task_id} as plain JSON: {raw.decode()}")
        watcher = asyncio.create_task(run.watch(stop))
        outcome = await follow(run.bootstrap, run.prefix, task_id)
        stop.set()
        await watcher
    finally:
        run.stop()
    if outcome is None:
        print(f"FAILED: no outcome for the task within {TIMEOUT_S:.0f}s", file=sys.stderr)
        return 1
    if isinstance(outcome.body, TaskFailed):
        print(f"FAILED: the task failed: {outcome.body.reason}", file=sys.stderr)
        return 1
    body = outcome.body
    _say(
        f"\nresult ({body.steps_completed} steps, {body.usage.calls} model calls, "
        f"{body.usage.input_tokens + body.usage.output_tokens} tokens, "
        f"${body.usage.cost_usd:.4f}):"
    )
    _say(body.result)
    _say("\ndemo ok: the task completed, read back from synod.results")
    return 0


def main() -> int:
    # Without ANTHROPIC_API_KEY the agents use the simulated model (offline).
    try:
        return asyncio.run(main_async())
    except (SynodError, TimeoutError, RuntimeError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
