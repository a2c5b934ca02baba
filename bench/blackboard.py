"""Benchmark: strong vs eventual shared knowledge (the task's blackboard of facts).

Offline and seeded, in virtual time. Every decision is the planner's own task
core (`synod.core.task.TaskMachine`, hedging off to isolate the blackboard);
every fact is the simulated model's (`synod.llm.simcontent`) turned into
records by the worker's own `facts_to_publish`. Per task: three researchers
write the shared key `approach` (and one key each); one of them, at random,
reads a stale source and gives a wrong value with low confidence. Two coders
need one researcher each; a third coder joins them (the answer). Durations
are uniform: researchers 0.5-3 s, coders 0.5-2 s, a vote 0.5 s. Seed s is the
same task (durations, the stale researcher) in both modes.

Per mode: latency (submit to outcome, virtual s) p50/p99, model calls per
task (rework: calls beyond the plan's steps, i.e. reconcile steps), steps
that worked without a concurrent fact (stale reads), conflicts seen,
answers right (the outcome's `approach` is the true value), coder steps that
built on a wrong or missing `approach` (their own view, before any reconcile),
and answers that would be right without the reconcile step (every coder's
view held the true value).

Prints a table; with --json exactly one JSON document on stdout. Asserts
nothing about time; exit status 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from machine import describe, machine_info  # bench/machine.py; bench/ is not a package
from synod.core.blackboard import RECONCILE_STEP, resolve_key
from synod.core.task import Logged, Publish, TaskConfig, TaskMachine, Tick
from synod.core.task.knowledge import read_view, stale_steps
from synod.llm import OUTPUT_MODELS
from synod.llm.simcontent import SHARED_FACT, STALE_MARKER, nominal, stable_seed, true_fact
from synod.llm.types import AgentRole, LLMRequest
from synod.roles.worker.service import facts_to_publish, output_text, render_prompt
from synod.wire import (
    Decision,
    Envelope,
    PlanStep,
    Sender,
    StepCompleted,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    VoteRequested,
)
from synod.wire.messages import Consistency

T0 = datetime(2026, 12, 1, tzinfo=UTC)
PLANNER = Sender(role="planner", instance="planner-0")
WORKER = Sender(role="researcher", instance="researcher-0")
CONSENSUS = Sender(role="consensus", instance="consensus-0")
MODES: tuple[Consistency, ...] = ("strong", "eventual")
CODERS = ("c1", "c2", "c3")


def plan_for(rng: random.Random) -> list[PlanStep]:
    stale = rng.randrange(3)
    researchers = [
        PlanStep(
            step_id=f"r{i + 1}",
            role="researcher",
            title=f"Survey source {i + 1}",
            description=f"Read source {i + 1}." + (f" [{STALE_MARKER}]" if i == stale else ""),
        )
        for i in range(3)
    ]
    return [
        *researchers,
        PlanStep(step_id="c1", role="coder", title="Part one", depends_on=["r1"]),
        PlanStep(step_id="c2", role="coder", title="Part two", depends_on=["r2"]),
        PlanStep(step_id="c3", role="coder", title="Join", depends_on=["c1", "c2"]),
    ]


def run_task(task_id: str, mode: Consistency, seed: int) -> dict[str, Any]:
    """One task in virtual time; what happened to it."""
    rng = random.Random(seed)
    plan = plan_for(rng)
    durations = {
        s.step_id: rng.uniform(0.5, 3.0) if s.role == "researcher" else rng.uniform(0.5, 2.0)
        for s in plan
    }
    durations[RECONCILE_STEP] = rng.uniform(0.5, 3.0)
    machine = TaskMachine(task_id, config=TaskConfig(hedge=False))
    now = 0.0
    queue: list[tuple[float, int, Envelope[Any]]] = []
    order = 0
    calls = 0

    def at(t: float) -> datetime:
        return T0 + timedelta(seconds=t)

    def log(env: Envelope[Any]) -> None:
        machine.step(Logged(env, replayed=True))

    def later(t: float, env: Envelope[Any]) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue, (t, order, env))

    submitted = TaskSubmitted(goal="Pick an approach", plan=plan, consistency=mode)
    log(Envelope.new(submitted, sender=PLANNER, task_id=task_id, created_at=at(0)))
    outcome: TaskCompleted | TaskFailed | None = None
    while outcome is None:
        machine.step(Tick(at(now)))
        while outcome is None:  # carry out what the machine says until it says nothing new
            ready = machine.ready()
            published = [a for a in ready.actions if isinstance(a, Publish)]
            for action in published:
                env = Envelope.new(
                    action.body,
                    sender=PLANNER,
                    task_id=task_id,
                    message_id=action.message_id,
                    attempt=action.attempt,
                    created_at=at(now),
                )
                log(env)
                body = action.body
                if isinstance(body, StepRequested):
                    calls += 1
                    later(now + durations[body.step_id], env)
                elif isinstance(body, VoteRequested):
                    decision = Decision(
                        decision_id=f"{body.proposal_id}/d",
                        proposal_id=body.proposal_id,
                        ballot=1,
                        outcome="answer",
                        quorum=2,
                    )
                    later(now + 0.5, Envelope.new(decision, sender=CONSENSUS, task_id=task_id))
                elif isinstance(body, TaskCompleted | TaskFailed):
                    outcome = body
            machine.advance(ready)
            if not published:
                break
        if outcome is not None:
            break
        if not queue:
            raise RuntimeError(f"{task_id}: nothing left to do and no outcome")
        now, _, env = heapq.heappop(queue)
        if isinstance(env.body, StepRequested):
            for record in work(task_id, env, at(now)):
                log(record)
        else:
            log(env.model_copy(update={"created_at": at(now)}))
    return measures(task_id, machine, outcome, latency_s=now, calls=calls, planned=len(plan))


def measures(
    task_id: str,
    machine: TaskMachine,
    outcome: TaskCompleted | TaskFailed | None,
    *,
    latency_s: float,
    calls: int,
    planned: int,
) -> dict[str, Any]:
    """What happened to one task, from its folded machine (shared with
    bench/blackboard_kafka.py, which folds a real run's log)."""
    truth = true_fact(task_id, SHARED_FACT)
    # The coders' own views: what they built on, before any reconcile.
    wrong_reads = 0
    for step_id in CODERS:
        attempt = machine.completed_attempt.get(step_id)
        board = read_view(machine, step_id, attempt) if attempt is not None else None
        seen = board.values(SHARED_FACT) if board is not None else []
        if not seen or resolve_key(seen).value != truth:
            wrong_reads += 1
    return {
        "latency_s": latency_s,
        "calls": calls,
        "planned": planned,
        "reconciles": machine.reconcile_requested + 1,
        "stale_steps": len(stale_steps(machine)),
        "completed": isinstance(outcome, TaskCompleted),
        "right": isinstance(outcome, TaskCompleted)
        and outcome.blackboard.get(SHARED_FACT) == truth,
        "wrong_reads": wrong_reads,
    }


def work(task_id: str, request: Envelope[Any], now: datetime) -> list[Envelope[Any]]:
    """What a worker publishes for a request: the facts (researchers), then the outcome."""
    step = request.body
    assert isinstance(step, StepRequested)
    role: AgentRole = "coder" if step.role == "coder" else "researcher"
    llm = LLMRequest(
        role=role,
        task_id=task_id,
        step_id=step.step_id,
        prompt=render_prompt(step),
        attempt=request.attempt,
        output_model=OUTPUT_MODELS[role],
    )
    output = output_text(
        nominal(llm, random.Random(stable_seed(task_id, step.step_id, request.attempt))), ""
    )
    out: list[Envelope[Any]] = []
    if role == "researcher":
        for fact in facts_to_publish(request.message_id, "researcher-0", step, output):
            out.append(
                Envelope.new(
                    fact,
                    sender=WORKER,
                    task_id=task_id,
                    message_id=fact.fact_id,
                    attempt=request.attempt,
                    created_at=now,
                )
            )
    done = StepCompleted(step_id=step.step_id, output=output)
    out.append(
        Envelope.new(done, sender=WORKER, task_id=task_id, attempt=request.attempt, created_at=now)
    )
    return out


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(runs)
    latency = [r["latency_s"] for r in runs]
    return {
        "tasks": n,
        "completed": sum(r["completed"] for r in runs),
        "latency_p50_s": round(statistics.median(latency), 3),
        "latency_p99_s": round(quantile(latency, 0.99), 3),
        "latency_mean_s": round(statistics.fmean(latency), 3),
        "calls_per_task": round(statistics.fmean(r["calls"] for r in runs), 3),
        "rework_calls_per_task": round(
            statistics.fmean(r["calls"] - r["planned"] for r in runs), 3
        ),
        "tasks_reconciled": sum(r["reconciles"] > 0 for r in runs),
        "stale_steps_per_task": round(statistics.fmean(r["stale_steps"] for r in runs), 3),
        "right": sum(r["right"] for r in runs),
        "wrong_reads_per_task": round(statistics.fmean(r["wrong_reads"] for r in runs), 3),
        "right_without_reconcile": sum(r["wrong_reads"] == 0 for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks per mode (default 200)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    modes = {}
    for mode in MODES:
        runs = [
            run_task(f"bb-{args.seed}-{i}", mode, args.seed * 100_003 + i)
            for i in range(args.tasks)
        ]
        modes[mode] = summarise(runs)
    report = {
        "benchmark": "blackboard",
        "machine": machine_info(),
        "tasks_per_mode": args.tasks,
        "seed": args.seed,
        "modes": modes,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
        return 0
    print(describe(report["machine"]))
    print(f"{args.tasks} tasks per mode, seed {args.seed}; virtual seconds")
    head = (
        f"{'mode':<9} {'p50 s':>6} {'p99 s':>6} {'calls':>6} {'rework':>7} "
        f"{'reconciled':>10} {'stale/task':>10} {'wrong reads':>11} {'right':>7} "
        f"{'right w/o rec.':>14}"
    )
    print(head)
    for mode, m in modes.items():
        print(
            f"{mode:<9} {m['latency_p50_s']:>6.2f} {m['latency_p99_s']:>6.2f} "
            f"{m['calls_per_task']:>6.2f} {m['rework_calls_per_task']:>7.2f} "
            f"{m['tasks_reconciled']:>10} {m['stale_steps_per_task']:>10.2f} "
            f"{m['wrong_reads_per_task']:>11.2f} "
            f"{m['right']:>4}/{m['tasks']:<3} {m['right_without_reconcile']:>8}/{m['tasks']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
