"""The topic catalogue: every topic Synod uses, with its partitions and retention.

Public names are fixed (`synod.tasks`, `synod.results`, `synod.dlq`,
`synod.heartbeats`); a prefix (`SYNOD_TOPIC_PREFIX`) lets two installs share a
cluster. `synod topics create` creates what is missing and leaves the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

Cleanup = Literal["delete", "compact", "compact,delete"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    cleanup_policy: Cleanup
    retention_ms: int | None  # None: keep forever (compacted state)
    purpose: str
    extra: tuple[tuple[str, str], ...] = ()  # further topic configs, as Kafka names them

    def config(self, replication_factor: int = 1) -> dict[str, str]:
        config: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if replication_factor >= 3:
            # acks=all then means two copies: one broker may die (or restart)
            # with no acknowledged record lost and writes going on.
            config["min.insync.replicas"] = "2"
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        if "compact" in self.cleanup_policy:
            # State topics: compact soon so a restarted service replays little.
            config["min.cleanable.dirty.ratio"] = "0.1"
            config["segment.ms"] = str(HOUR_MS)
        config.update(self.extra)
        return config


# Task-scoped topics share one partition count so a task's messages sit in the
# same partition number everywhere (same key, same partitioner, same count).
TASK_PARTITIONS = 12

TASKS = TopicSpec("synod.tasks", TASK_PARTITIONS, "delete", 7 * DAY_MS, "tasks in (JSON or Avro)")
RESULTS = TopicSpec("synod.results", TASK_PARTITIONS, "delete", 7 * DAY_MS, "outcomes (JSON)")
TASK_EVENTS = TopicSpec(
    "synod.task-events",
    TASK_PARTITIONS,
    "delete",
    7 * DAY_MS,
    "a task's own log: plans, step results, decisions; the planner event-sources from it",
)
STEPS_RESEARCHER = TopicSpec(
    "synod.steps.researcher", TASK_PARTITIONS, "delete", 7 * DAY_MS, "research work"
)
STEPS_CODER = TopicSpec("synod.steps.coder", TASK_PARTITIONS, "delete", 7 * DAY_MS, "coding work")
STEPS_CANCEL = TopicSpec(
    "synod.steps.cancel", 3, "delete", DAY_MS, "attempts to stop (hedge losers); every worker reads"
)
VOTES = TopicSpec("synod.votes", TASK_PARTITIONS, "delete", 7 * DAY_MS, "vote requests and votes")
DECISIONS = TopicSpec(
    "synod.decisions", TASK_PARTITIONS, "delete", 7 * DAY_MS, "one decision per proposal"
)
WORKSPACE = TopicSpec(
    "synod.workspace", TASK_PARTITIONS, "compact", None, "file writes of shared workspaces"
)
CONSENSUS_STATE = TopicSpec(
    "synod.consensus-state", TASK_PARTITIONS, "compact", None, "consensus tallies (changelog)"
)
# Snapshots of what stateful services fold from a partition (the consensus
# fold, the gateway's view, the planner's tasks), keyed by owner and source
# partition: a restart restores the latest and folds only the tail. Compacted
# (one live record per key); a snapshot may be megabytes, and short segments
# let compaction drop the superseded ones within minutes.
SNAPSHOTS = TopicSpec(
    "synod.snapshots",
    TASK_PARTITIONS,
    "compact",
    None,
    "state snapshots (owner|topic|partition -> state up to an offset)",
    extra=(
        ("max.message.bytes", str(8 * 1024 * 1024 + 64 * 1024)),
        ("segment.ms", str(10 * 60 * 1000)),
        ("segment.bytes", str(64 * 1024 * 1024)),
        ("delete.retention.ms", str(HOUR_MS)),
    ),
)
HEARTBEATS = TopicSpec("synod.heartbeats", 3, "delete", HOUR_MS, "liveness of every instance")
DLQ = TopicSpec("synod.dlq", 3, "delete", 30 * DAY_MS, "dead letters with reasons")
SUPERVISOR = TopicSpec(
    "synod.supervisor", 3, "compact", None, "quarantines, keyed by instance (latest wins)"
)
DLQ_REPLAYS = TopicSpec(
    "synod.dlq.replays",
    3,
    "compact",
    None,
    "dead letters replayed by `synod dlq replay`, keyed by dead-letter id (replay once)",
)
ESCALATIONS = TopicSpec(
    "synod.escalations",
    TASK_PARTITIONS,
    "delete",
    30 * DAY_MS,
    "escalations to a person and their answers, keyed by task (docs/adr/0011)",
)
# Retry tiers: a step that failed transiently waits in synod.retry.<role>.<n>
# (n = 1..RETRY_TIERS, increasing delays) instead of holding its work topic's
# partition; SYNOD_RETRY_DELAYS_S may use fewer tiers, never more.
RETRY_TIERS = 3
RETRY_RESEARCHER = tuple(
    TopicSpec(
        f"synod.retry.researcher.{n}",
        TASK_PARTITIONS,
        "delete",
        7 * DAY_MS,
        f"research steps waiting for retry {n}",
    )
    for n in range(1, RETRY_TIERS + 1)
)
RETRY_CODER = tuple(
    TopicSpec(
        f"synod.retry.coder.{n}",
        TASK_PARTITIONS,
        "delete",
        7 * DAY_MS,
        f"coding steps waiting for retry {n}",
    )
    for n in range(1, RETRY_TIERS + 1)
)

CATALOGUE: tuple[TopicSpec, ...] = (
    TASKS,
    RESULTS,
    TASK_EVENTS,
    STEPS_RESEARCHER,
    STEPS_CODER,
    STEPS_CANCEL,
    VOTES,
    DECISIONS,
    WORKSPACE,
    CONSENSUS_STATE,
    SNAPSHOTS,
    HEARTBEATS,
    DLQ,
    SUPERVISOR,
    DLQ_REPLAYS,
    ESCALATIONS,
    *RETRY_RESEARCHER,
    *RETRY_CODER,
)


def topic_name(spec: TopicSpec | str, prefix: str = "") -> str:
    """The topic's name on the cluster: the prefix, then the catalogue name."""
    name = spec.name if isinstance(spec, TopicSpec) else spec
    return f"{prefix}{name}"
