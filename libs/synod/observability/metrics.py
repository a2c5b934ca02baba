"""The metrics an operator pages on, that no single role owns.

Names follow CONVENTIONS (`synod_<subsystem>_<name>_<unit>`, base units,
`_total` counters); labels are bounded, never a task or step id. The alert
rules and dashboards in charts/synod name these, and a test holds them to it.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from synod.errors import ErrorClass
from synod.wire import Envelope
from synod.wire.messages import TaskCompleted

CONSUMER_LAG = Gauge(
    "synod_consumer_lag_messages",
    "Records on a partition this consumer group has not handled yet: the partition's "
    "end (last stable offset under read_committed) minus the fetch position, plus the "
    "records fetched and not finished",
    ["group", "topic", "partition"],
)
HOP_LATENCY = Histogram(
    "synod_transport_hop_latency_seconds",
    "From a record's producer timestamp to its handler starting, by topic",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HANDLER_ERRORS = Counter(
    "synod_transport_handler_errors_total",
    "Handlers that raised (their record went to the dead-letter topic), by topic and "
    "error class (transient, permanent, budget)",
    ["topic", "error_class"],
)
TASK_DURATION = Histogram(
    "synod_task_duration_seconds",
    "End-to-end task latency, from the submission's creation to its outcome on "
    "synod.results, by outcome (completed, failed)",
    ["outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
TASKS_FINISHED = Counter(
    "synod_tasks_finished_total",
    "Outcomes published on synod.results, by outcome (completed, failed)",
    ["outcome"],
)
LLM_CALLS = Counter(
    "synod_llm_calls_total",
    "Model calls through the resilient wrapper (fallbacks included), by role, the model "
    "that served or failed, and outcome (ok, or the error class)",
    ["role", "model", "outcome"],
)
LLM_TOKENS = Counter(
    "synod_llm_tokens_total",
    "Tokens of model calls, by role, model and kind (input, output)",
    ["role", "model", "kind"],
)
LLM_COST = Counter(
    "synod_llm_cost_usd_total",
    "Estimated cost of model calls in US dollars, by role and model",
    ["role", "model"],
)
LLM_DURATION = Histogram(
    "synod_llm_call_duration_seconds",
    "Wall time of one model call through the resilient wrapper, by role and outcome",
    ["role", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def record_consumer_lag(group: str, topic: str, partition: int, lag: int | None) -> None:
    """Set a partition's lag; None drops the series (the partition was revoked)."""
    labels = (group, topic, str(partition))
    if lag is None:
        with contextlib.suppress(KeyError):
            CONSUMER_LAG.remove(*labels)
        return
    CONSUMER_LAG.labels(*labels).set(max(0, lag))


def record_task_end(submitted: Envelope[Any] | None, outcome: Envelope[Any], now: datetime) -> None:
    """Count a task's outcome (TaskCompleted or TaskFailed) going out on synod.results and
    observe its latency from the submission's `created_at` (when the submission is known).

    The submission's clock is the client's or the gateway's: a skewed client clock
    skews this histogram, never below zero.
    """
    label = "completed" if isinstance(outcome.body, TaskCompleted) else "failed"
    TASKS_FINISHED.labels(label).inc()
    if submitted is not None:
        seconds = (now - submitted.created_at).total_seconds()
        TASK_DURATION.labels(label).observe(max(0.0, seconds))


def record_handler_error(topic: str, error_class: ErrorClass) -> None:
    HANDLER_ERRORS.labels(topic, error_class).inc()
