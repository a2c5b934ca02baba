"""Prometheus metrics of the agents: what each failure and each recovery counts as.

Labels are bounded (role, outcome, reason codes, kinds), never task or step ids.
Each process exposes its own on /metrics; Prometheus adds the instance label.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STEP_ATTEMPTS = Counter(
    "synod_step_attempts_total",
    "Step attempts a worker finished, by outcome and failure reason",
    ["role", "outcome", "reason"],
)
STEP_DURATION = Histogram(
    "synod_step_duration_seconds",
    "Wall time of one step attempt, model calls included",
    ["role", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
STEP_CANCELS = Counter(
    "synod_step_cancels_total",
    "Step attempts stopped by a StepCancelled (a hedged step's loser), by worker role",
    ["role"],
)
PLANNER_ACTIONS = Counter(
    "synod_planner_actions_total",
    "What the planner published: step requests by kind (first, retry, resample, "
    "revision), votes by round kind (first, revote), outcomes by result",
    ["action", "kind"],
)
JUROR_ATTEMPTS = Counter(
    "synod_reviewer_attempts_total",
    "Model calls jurors made, by result (ok, retried, gave_up)",
    ["result"],
)
VOTES_CAST = Counter("synod_reviewer_votes_total", "Votes cast, by kind", ["kind"])
TEST_RUNS = Histogram(
    "synod_reviewer_test_run_duration_seconds",
    "Runs of a task's tests on an answer's workspace (materialise + pytest), by outcome "
    "(passed, failed, no_verdict)",
    ["outcome"],
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
STEP_RETRIES = Counter(
    "synod_step_retries_total",
    "Failed step runs a worker parked in a retry topic, by tier (1-based) and failure reason",
    ["role", "tier", "reason"],
)
STEP_RETRIES_EXHAUSTED = Counter(
    "synod_step_retries_exhausted_total",
    "Steps whose retry tiers were all spent (reported failed and dead-lettered), by last reason",
    ["role", "reason"],
)
