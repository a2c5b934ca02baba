"""What travels on each topic of the catalogue: message types, key, who writes, who reads.

`synod.transport.topics` says how a topic is made (partitions, retention); this
says what it carries, for the AsyncAPI document (`synod.transport.asyncapi`)
and for anyone reading a topic without our library. Every topic of the
catalogue has an entry; the generator refuses a catalogue topic without one,
so a new topic is described when it is added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from synod.transport import topics as t

Encoding = Literal["avro", "json", "avro-or-json", "raw", "snapshot", "replay-json"]


@dataclass(frozen=True)
class Channel:
    messages: tuple[str, ...]  # wire message types (synod.wire.BODY_TYPES); empty: none yet
    key: str
    publishers: tuple[str, ...]
    consumers: tuple[str, ...]
    encoding: Encoding = "avro"
    note: str = ""


_STEP_WORK = Channel(
    messages=("StepRequested",),
    key="task_id/step_id (task_id/step_id/attempt for a hedge, task_id/agent-i for a slot)",
    publishers=("planner", "supervisor"),
    consumers=("researcher", "coder"),
)


def _retry(role: str) -> Channel:
    return Channel(
        messages=("StepRequested",),
        key="the work topic's key",
        publishers=(role,),
        consumers=(role,),
        encoding="avro",
        note=(
            "the original work record, bytes and headers unchanged, plus headers saying "
            "when it is due and why it waits"
        ),
    )


CHANNELS: dict[str, Channel] = {
    t.TASKS.name: Channel(
        messages=("TaskSubmitted", "TaskCancelRequested"),
        key="task_id",
        publishers=("gateway", "client"),
        consumers=("planner",),
        encoding="avro-or-json",
        note="JSON (header content-type: application/json; the short form too) or Avro",
    ),
    t.RESULTS.name: Channel(
        messages=("TaskCompleted", "TaskFailed", "Reconciled"),
        key="task_id",
        publishers=("planner",),
        consumers=("gateway", "client"),
        encoding="json",
    ),
    t.TASK_EVENTS.name: Channel(
        messages=(
            "TaskSubmitted",
            "PlanProposed",
            "StepRequested",
            "FactPublished",
            "StepCompleted",
            "StepFailed",
            "StepRetrying",
            "StepReassigned",
            "StepClaimed",
            "StepCancelled",
            "VoteRequested",
            "Decision",
            "AnswerVerified",
            "EscalationRequested",
            "EscalationRaised",
            "EscalationAnswered",
            "TaskCancelRequested",
            "UsageReported",
            "Reconciled",
            "TaskCompleted",
            "TaskFailed",
        ),
        key="task_id",
        publishers=("planner", "researcher", "coder", "reviewer", "consensus", "supervisor"),
        consumers=("planner", "gateway", "supervisor", "client"),
    ),
    t.STEPS_RESEARCHER.name: _STEP_WORK,
    t.STEPS_CODER.name: _STEP_WORK,
    t.STEPS_CANCEL.name: Channel(
        messages=("StepCancelled",),
        key="task_id",
        publishers=("planner",),
        consumers=("researcher", "coder"),
    ),
    t.VOTES.name: Channel(
        messages=("VoteRequested", "Vote", "BallotDeadline", "Decision"),
        key="task_id",
        publishers=("planner", "reviewer", "consensus"),
        consumers=("reviewer", "consensus", "supervisor"),
    ),
    t.ESCALATIONS.name: Channel(
        messages=("EscalationRaised", "EscalationAnswered"),
        key="task_id",
        publishers=("planner", "gateway"),
        consumers=("planner", "gateway"),
        note="the planner forwards each EscalationRaised; the gateway sends the one answer",
    ),
    t.DECISIONS.name: Channel(
        messages=(),
        key="task_id",
        publishers=(),
        consumers=(),
        note="created but unused: decisions go to synod.task-events and synod.votes",
    ),
    t.WORKSPACE.name: Channel(
        messages=("FileWritten", "LeaseGranted"),
        key="task_id|path|write_id (a write), task_id|path|token (a lease)",
        publishers=("planner", "coder"),
        consumers=("planner", "reviewer", "gateway"),
    ),
    t.CONSENSUS_STATE.name: Channel(
        messages=(),
        key="task_id",
        publishers=(),
        consumers=(),
        note="created but unused: the consensus state is a fold of synod.votes (ADR 0003)",
    ),
    t.SNAPSHOTS.name: Channel(
        messages=(),
        key="owner|topic|partition",
        publishers=("consensus",),
        consumers=("consensus",),
        encoding="snapshot",
        note="a snapshot frame (synod.core.snapshot), not an envelope",
    ),
    t.HEARTBEATS.name: Channel(
        messages=("Heartbeat", "Reachability"),
        key="instance id",
        publishers=(
            "gateway",
            "planner",
            "researcher",
            "coder",
            "reviewer",
            "consensus",
            "supervisor",
        ),
        consumers=("supervisor", "client"),
    ),
    t.DLQ.name: Channel(
        messages=("DeadLetter",),
        key="the source record's key",
        publishers=("planner", "researcher", "coder", "reviewer", "consensus", "supervisor"),
        consumers=("client", "gateway"),
    ),
    t.SUPERVISOR.name: Channel(
        messages=("QuarantineNotice",),
        key="instance id",
        publishers=("supervisor",),
        consumers=("planner",),
    ),
    t.DLQ_REPLAYS.name: Channel(
        messages=(),
        key="dead-letter id",
        publishers=("client", "gateway"),
        consumers=("client", "gateway"),
        encoding="replay-json",
        note="one JSON record per replayed dead letter (synod.core.deadletters.replay_record)",
    ),
    **{spec.name: _retry("researcher") for spec in t.RETRY_RESEARCHER},
    **{spec.name: _retry("coder") for spec in t.RETRY_CODER},
}


def missing_channels() -> list[str]:
    """Catalogue topics with no entry here."""
    return [spec.name for spec in t.CATALOGUE if spec.name not in CHANNELS]
