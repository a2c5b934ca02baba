"""The messages on the wire: one envelope, many typed bodies.

Every message is an `Envelope[Body]`. The envelope carries what every hop needs
(ids, the task key, causality, the retry attempt, trace context); the body is
the typed payload. The Avro schemas in schemas/avro/ are generated from these
classes (`make schemas`) and a test holds them equal, so this module is where a
message type is defined and evolved: add fields with defaults, never change or
remove one without a default.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from synod.errors import ErrorClass

# Every integer on the wire is an Avro `long`: bounded, so a value that cannot
# be encoded is refused when the message is built (a 422 at the gateway naming
# the field), not when it is written (a 500). Scalar fields say `le=MAX_LONG`
# in their Field; items of lists and maps are `Long`s (a validator: ge/le
# metadata on an alias would override a field's own, tighter bounds).
MIN_LONG = -(2**63)
MAX_LONG = 2**63 - 1


def _in_long_range(value: int) -> int:
    if not MIN_LONG <= value <= MAX_LONG:
        raise ValueError("must fit in 64 bits (an Avro long)")
    return value


LONG_RANGE = AfterValidator(_in_long_range)
Long = Annotated[int, LONG_RANGE]

Role = Literal[
    "gateway", "planner", "researcher", "coder", "reviewer", "consensus", "supervisor", "client"
]
Consistency = Literal["strong", "eventual"]
PartitionMode = Literal["cp", "ap"]
PolicyName = Literal["majority", "supermajority", "unanimity", "confidence", "adaptive"]
VoteKind = Literal["choice", "reject", "abstain"]

# Bounds that keep one message well inside Kafka's default 1 MB limit and stop a
# runaway model from filling a partition.
MAX_TEXT = 200_000
MAX_GOAL = 20_000
# A project's tests ride on the task and on every answer ballot, so they share
# one text budget, over a bounded number of files.
MAX_TEST_FILES = 50
MAX_TESTS_CHARS = MAX_TEXT


def check_tests(tests: dict[str, str] | None) -> dict[str, str] | None:
    """Test files (path -> pytest source) a verifier may write: bounded, relative `.py` paths."""
    if tests is None:
        return None
    if not tests:
        raise ValueError("tests is empty: leave it out, or give at least one test file")
    if len(tests) > MAX_TEST_FILES:
        raise ValueError(f"{len(tests)} test files; at most {MAX_TEST_FILES}")
    total = sum(len(content) for content in tests.values())
    if total > MAX_TESTS_CHARS:
        raise ValueError(
            f"the test files hold {total} characters together; at most {MAX_TESTS_CHARS}"
        )
    for path in tests:
        parts = path.split("/")
        if not path or path.startswith("/") or "\\" in path or ":" in path:
            raise ValueError(f"test path {path!r} must be relative, with / between folders")
        if ".." in parts or "" in parts or "." in parts:
            raise ValueError(f"test path {path!r} must not contain '..', '.' or empty parts")
        if not path.endswith(".py") or len(path) > 300:
            raise ValueError(f"test path {path!r} must end in .py (and be at most 300 long)")
    return tests


class WireModel(BaseModel):
    """Base of every wire model: immutable, unknown fields ignored.

    Ignoring unknown fields is what makes a newer producer readable by an older
    consumer (forward compatibility) on the JSON edge, as Avro resolution does
    on the internal topics.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", ser_json_bytes="base64", val_json_bytes="base64"
    )


class Body(WireModel):
    """Base of message bodies; `TYPE` is the envelope's `type` for this body."""

    TYPE: ClassVar[str]
    TASK_SCOPED: ClassVar[bool] = True


# ---------------------------------------------------------------- parts


class Sender(WireModel):
    role: Role
    instance: str = Field(min_length=1, max_length=200)


class TraceContext(WireModel):
    """W3C trace context (https://www.w3.org/TR/trace-context/); empty when untraced."""

    traceparent: str = ""
    tracestate: str = ""


class Usage(WireModel):
    """What LLM calls cost: tokens, money and count, summed over a step or task."""

    model: str = ""
    calls: int = Field(default=0, ge=0, le=MAX_LONG)
    input_tokens: int = Field(default=0, ge=0, le=MAX_LONG)
    output_tokens: int = Field(default=0, ge=0, le=MAX_LONG)
    cost_usd: float = Field(default=0.0, ge=0.0)
    # Calls to a model the price table does not know: their cost is not in
    # `cost_usd` (unknown, not zero), so a nonzero count makes it a lower bound.
    unpriced_calls: int = Field(default=0, ge=0, le=MAX_LONG)


class SkippedLink(WireModel):
    """A link of the fallback chain that did not answer, and why (an LLM error reason)."""

    provider: str = ""
    model: str = ""
    reason: str = Field(default="", max_length=100)  # circuit_open, rate_limited, timeout, ...


class ModelRoute(WireModel):
    """Which provider and model served a step, how that model was chosen, and what was
    passed over on the way: the routing in force for one step attempt.

    `source` says where the first link came from: `step` (the request named it, as
    a supervisor reassignment does), `label model.<role>[.<kind>]` (the task's
    labels), `SYNOD_MODEL_<ROLE>` or `SYNOD_LLM_ROUTING <key>` (the service's
    settings), or `default`. `chain` lists the links in order as provider:model.
    """

    provider: str = ""
    model: str = ""
    source: str = Field(default="", max_length=200)
    chain: list[str] = Field(default_factory=list)
    skipped: list[SkippedLink] = Field(default_factory=list)


ROUTING_LABEL = "model"


def routing_labels(labels: dict[str, str]) -> dict[str, str]:
    """The labels of a task that route its model calls: `model`, `model.<role>[.<kind>]`."""
    return {
        k: v for k, v in labels.items() if k == ROUTING_LABEL or k.startswith(ROUTING_LABEL + ".")
    }


class PlanStep(WireModel):
    """One node of a plan DAG; `files` are the workspace files the step writes."""

    step_id: str = Field(min_length=1, max_length=200)
    role: Literal["researcher", "coder", "reviewer"] = "coder"
    title: str = Field(default="", max_length=1_000)
    description: str = Field(default="", max_length=MAX_TEXT)
    depends_on: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    priority: int = Field(default=0, ge=MIN_LONG, le=MAX_LONG)


class Candidate(WireModel):
    candidate_id: str = Field(min_length=1, max_length=200)
    content: str = Field(default="", max_length=MAX_TEXT)
    author: str = ""


class Header(WireModel):
    key: str
    value: bytes | None = None


OnExhausted = Literal["fail", "escalate", "warn"]


class Budget(WireModel):
    """What a task may spend on model calls; None: no limit of that kind.

    `on_exhausted` says what happens when the next call would not fit: `fail`
    the task, `escalate` it to a person (who may raise the budget), or `warn`
    and go on without a limit (docs/adr/0011).
    """

    max_tokens: int | None = Field(default=None, ge=1, le=MAX_LONG)
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_model_calls: int | None = Field(default=None, ge=1, le=MAX_LONG)
    on_exhausted: OnExhausted = "fail"


class Allowance(WireModel):
    """The part of its task's budget one step attempt (or one juror) may spend.

    Granted by the planner from the fold of the task's log (spent plus what is
    granted to attempts still out must stay within the budget); a worker makes
    a model call only if the call's worst case fits what is left of it.
    """

    tokens: int | None = Field(default=None, ge=0, le=MAX_LONG)
    cost_usd: float | None = Field(default=None, ge=0)
    calls: int | None = Field(default=None, ge=0, le=MAX_LONG)


# ---------------------------------------------------------------- bodies


class TaskSubmitted(Body):
    """A goal for the team. Every field but `goal` has a documented default."""

    TYPE: ClassVar[str] = "TaskSubmitted"

    goal: str = Field(min_length=1, max_length=MAX_GOAL)
    consistency: Consistency = "strong"
    partition_mode: PartitionMode = "cp"
    policy: PolicyName = "majority"
    reviewers: int = Field(default=3, ge=1, le=31)
    deadline_s: float = Field(default=600.0, gt=0, le=86_400)
    plan: list[PlanStep] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    # The project's tests (path -> pytest file); reviewers run them on the
    # task's workspace before they judge its answer.
    tests: dict[str, str] | None = None
    # Token, cost and call limits (None: the planner's SYNOD_BUDGET_* defaults).
    budget: Budget | None = None

    @field_validator("tests")
    @classmethod
    def _bounded_tests(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return check_tests(value)


class PlanProposed(Body):
    TYPE: ClassVar[str] = "PlanProposed"

    plan_id: str = Field(min_length=1)
    steps: list[PlanStep]
    rationale: str = Field(default="", max_length=MAX_TEXT)


class StepRequested(Body):
    TYPE: ClassVar[str] = "StepRequested"

    step_id: str = Field(min_length=1)
    plan_id: str = ""
    role: Literal["researcher", "coder", "reviewer"]
    title: str = ""
    instructions: str = Field(default="", max_length=MAX_TEXT)
    inputs: dict[str, str] = Field(default_factory=dict)
    deadline_s: float = Field(default=120.0, gt=0)
    model: str = ""
    temperature: float | None = None
    prompt_variant: str = ""
    files: list[str] = Field(default_factory=list)  # what the step writes to the workspace
    # The workspace this step builds on, from the planner (the task's one
    # authority on its workspace): per file, the version vector to base the
    # write on, and in `strong` consistency the fencing token of the file's
    # lease (also logged as a LeaseGranted on synod.workspace).
    base_versions: dict[str, dict[str, Long]] = Field(default_factory=dict)
    lease_tokens: dict[str, Long] = Field(default_factory=dict)
    # The team slot that runs the step (central and claim teams: slot i works
    # through its own steps one at a time); None: any coder of the pool.
    agent: int | None = Field(default=None, ge=0, le=MAX_LONG)
    # The task's routing labels (`routing_labels`): the model per role and step
    # kind this task asks for, over the services' own routing settings.
    labels: dict[str, str] = Field(default_factory=dict)
    # The blackboard facts (FactPublished ids) the step was given in
    # inputs["blackboard"]: what it read, so `synod check` can hold a `strong`
    # step to having read only decided facts (docs/blackboard.md).
    facts: list[str] = Field(default_factory=list)
    # The share of the task's budget this attempt may spend (None: unlimited).
    allowance: Allowance | None = None
    # The Kafka key's lane the planner chose for this request ("": the default,
    # see `synod.core.task.actions.key_of`): a hedge copy's lane is picked so its
    # key lands on a partition another live worker owns (docs/cap.md, gray failure).
    lane: str = ""


class StepCompleted(Body):
    TYPE: ClassVar[str] = "StepCompleted"

    step_id: str = Field(min_length=1)
    output: str = Field(default="", max_length=MAX_TEXT)
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = Field(default=0.0, ge=0)
    route: ModelRoute = Field(default_factory=ModelRoute)  # which model answered, chosen how


class StepFailed(Body):
    TYPE: ClassVar[str] = "StepFailed"

    step_id: str = Field(min_length=1)
    error_class: ErrorClass
    error: str = Field(default="", max_length=10_000)
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = Field(default=0.0, ge=0)
    # A stable code (an LLM error reason such as "invalid_output", or "deadline")
    # for metrics and for deciding whether another attempt can help.
    reason: str = Field(default="", max_length=100)
    # When the failure said when to come back (an open circuit breaker's remaining
    # open time, a provider's retry-after): the floor of the next retry's delay.
    retry_after_s: float | None = Field(default=None, ge=0)
    route: ModelRoute = Field(default_factory=ModelRoute)  # the links tried, and why each failed


class StepRetrying(Body):
    """A worker parked a transiently failed step attempt in retry topic `retry`.

    The same attempt runs again at `due_at` (the planner must not count it lost
    before then); appended to the task's log by the worker, keyed by task.
    """

    TYPE: ClassVar[str] = "StepRetrying"

    step_id: str = Field(min_length=1)
    retry: int = Field(ge=1, le=MAX_LONG)  # the retry tier the attempt waits in (1-based)
    due_at: datetime
    reason: str = Field(default="", max_length=100)
    error: str = Field(default="", max_length=10_000)
    deadline_s: float = Field(default=120.0, gt=0)  # of the run to come
    usage: Usage = Field(default_factory=Usage)  # what the failed run spent


class Verification(WireModel):
    """What a juror checks before judging an answer: `tests` on the task's workspace.

    `winners` (step -> the request id of the attempt whose output the answer is)
    names the workspace version: writes of other attempts (hedged losers,
    rejected revisions) are left out when it is materialised.
    """

    tests: dict[str, str]
    winners: dict[str, str] = Field(default_factory=dict)

    @field_validator("tests")
    @classmethod
    def _bounded_tests(cls, value: dict[str, str]) -> dict[str, str]:
        checked = check_tests(value)
        assert checked is not None
        return checked


class VoteRequested(Body):
    """A proposal put to an electorate: pick one candidate, reject all, or abstain."""

    TYPE: ClassVar[str] = "VoteRequested"

    proposal_id: str = Field(min_length=1)
    ballot: int = Field(default=1, ge=1, le=MAX_LONG)
    subject: Literal["plan", "answer"] = "answer"
    candidates: list[Candidate] = Field(min_length=1)
    electorate: list[str] = Field(min_length=1)
    policy: PolicyName = "majority"
    partition_mode: PartitionMode = "cp"
    deadline_s: float = Field(default=60.0, gt=0)
    verify: Verification | None = None
    # What each juror may spend on this proposal, all ballots (None: unlimited).
    allowance: Allowance | None = None


class Vote(Body):
    TYPE: ClassVar[str] = "Vote"

    proposal_id: str = Field(min_length=1)
    ballot: int = Field(default=1, ge=1, le=MAX_LONG)
    voter: str = Field(min_length=1)
    kind: VoteKind = "choice"
    choice: str | None = None
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    rationale: str = Field(default="", max_length=10_000)

    @model_validator(mode="after")
    def _choice_matches_kind(self) -> Vote:
        if (self.kind == "choice") != (self.choice is not None):
            raise ValueError("a vote of kind 'choice' needs a choice; reject/abstain have none")
        return self


class Decision(Body):
    """The one outcome of a proposal: a candidate id, `rejected` or `no_quorum`."""

    TYPE: ClassVar[str] = "Decision"

    decision_id: str = Field(min_length=1)
    proposal_id: str = Field(min_length=1)
    ballot: int = Field(ge=1, le=MAX_LONG)
    outcome: str = Field(min_length=1)
    tally: dict[str, float] = Field(default_factory=dict)
    quorum: int = Field(ge=0, le=MAX_LONG)
    votes_counted: int = Field(default=0, ge=0, le=MAX_LONG)
    provisional: bool = False
    equivocators: list[str] = Field(default_factory=list)
    # Partitions (docs/cap.md): electorate members the last ballot could not reach,
    # by the supervisor's failure detector (or, without its report, who did not vote).
    unreachable: list[str] = Field(default_factory=list)


class BallotDeadline(Body):
    """A ballot's deadline passed, as a record on the vote log.

    The consensus service appends it when its clock passes the deadline; the
    ballot ends where the record lands among the votes, so a replay of the log
    ends it at the same place (docs/adr/0003).
    """

    TYPE: ClassVar[str] = "BallotDeadline"

    proposal_id: str = Field(min_length=1)
    ballot: int = Field(ge=1, le=MAX_LONG)
    # The electorate members the supervisor saw when the marker was written; None:
    # no fresh report (then an `ap` ballot cannot settle for fewer voters).
    reachable: list[str] | None = None


class Reconciled(Body):
    """After a heal: the full electorate's verdict on a provisional decision (docs/cap.md).

    `confirmed`: the full electorate decided as the provisional decision did; else
    the decision is overturned and `outcome` is what the full electorate decided.
    """

    TYPE: ClassVar[str] = "Reconciled"

    decision_id: str = Field(min_length=1)
    proposal_id: str = Field(min_length=1)
    ballot: int = Field(ge=1, le=MAX_LONG)
    provisional_outcome: str = Field(min_length=1)
    outcome: str = Field(min_length=1)
    confirmed: bool
    tally: dict[str, float] = Field(default_factory=dict)
    votes_counted: int = Field(default=0, ge=0, le=MAX_LONG)


class Reachability(Body):
    """The supervisor's failure detector: which instances it hears now (docs/cap.md)."""

    TYPE: ClassVar[str] = "Reachability"
    TASK_SCOPED: ClassVar[bool] = False

    observer: str = Field(min_length=1)
    reachable: list[str] = Field(default_factory=list)
    suspected: list[str] = Field(default_factory=list)


class Heartbeat(Body):
    TYPE: ClassVar[str] = "Heartbeat"
    TASK_SCOPED: ClassVar[bool] = False

    instance: str = Field(min_length=1)
    role: Role
    seq: int = Field(default=0, ge=0, le=MAX_LONG)
    state: Literal["starting", "running", "draining", "stopping"] = "running"
    in_flight: list[str] = Field(default_factory=list)
    breakers: dict[str, str] = Field(default_factory=dict)
    last_progress_at: datetime | None = None
    # Where the process runs, so a local supervisor can restart it by pid.
    pid: int = Field(default=0, ge=0, le=MAX_LONG)
    host: str = ""
    # The partitions this instance's consumer groups hold now, per topic (its
    # full name, prefix included): the planner maps the step topics' partitions
    # to the workers that own them, to send a hedge copy to another worker.
    assigned: dict[str, list[Long]] = Field(default_factory=dict)


class StepReassigned(Body):
    """The supervisor's order to run a step again, differently, after `after_attempt`.

    Appended to the task's log (keyed by task), so the planner applies it in the
    task's order; the attempt it asks for is `after_attempt + 1` or the next free
    one, and a finished task ignores it.
    """

    TYPE: ClassVar[str] = "StepReassigned"

    step_id: str = Field(min_length=1)
    after_attempt: int = Field(default=0, ge=0, le=MAX_LONG)
    model: str = ""
    temperature: float | None = None
    prompt_variant: str = ""
    reason: str = Field(default="", max_length=100)


class StepClaimed(Body):
    """A claim-mode team slot took a step from the shared list (the task's log).

    `blocked_on` names the step's dependencies that were unfinished when the
    claim was made: a blocked claim, where the slot waits instead of working.
    """

    TYPE: ClassVar[str] = "StepClaimed"

    step_id: str = Field(min_length=1)
    agent: int = Field(ge=0, le=MAX_LONG)
    blocked_on: list[str] = Field(default_factory=list)


class StepCancelled(Body):
    """Stop the named attempts of a step: their result is no longer wanted.

    The planner appends it to the task's log and forwards it to
    `synod.steps.cancel`, which every worker instance reads; the instance
    running one of `request_ids` (the StepRequested message ids) cancels the
    call and publishes nothing for it.
    """

    TYPE: ClassVar[str] = "StepCancelled"

    step_id: str = Field(min_length=1)
    request_ids: list[str] = Field(min_length=1)
    attempts: list[Long] = Field(default_factory=list)
    reason: str = Field(default="", max_length=100)  # "hedge_lost": another attempt won


class QuarantineNotice(Body):
    """An instance put in or out of quarantine; keyed by instance on synod.supervisor."""

    TYPE: ClassVar[str] = "QuarantineNotice"
    TASK_SCOPED: ClassVar[bool] = False

    instance: str = Field(min_length=1)
    role: str = ""
    active: bool = True
    until: datetime | None = None
    reason: str = Field(default="", max_length=100)
    strikes: int = Field(default=0, ge=0, le=MAX_LONG)


class FileWritten(Body):
    """One file write of a task's shared workspace, on `synod.workspace`.

    Keyed `<task>/<path>/<write_id>` (compaction only merges redeliveries of
    one write) and put in the task's partition (one order per task); see
    `synod.transport.workspace`. `base_version` is the version vector the writer
    read (empty: a new file); `lease_token` echoes the step's lease in
    `strong` consistency, so a stale writer is fenced off.
    """

    TYPE: ClassVar[str] = "FileWritten"
    path: str = Field(min_length=1, max_length=1_000)
    content: str = Field(default="", max_length=MAX_TEXT)
    writer: str = Field(min_length=1, max_length=200)
    step_id: str = Field(min_length=1)
    write_id: str = Field(min_length=1, max_length=200)
    base_version: dict[str, Long] = Field(default_factory=dict)
    lease_token: int | None = Field(default=None, ge=1, le=MAX_LONG)


class LeaseGranted(Body):
    """The planner gave step `step_id` the write lease of `path` (`strong` consistency).

    On synod.workspace in the task's partition, before the step is requested,
    so every fold of the topic sees the grant before any write under it. A
    newer grant of the path (a retry, a reassignment) fences the older token.
    """

    TYPE: ClassVar[str] = "LeaseGranted"
    path: str = Field(min_length=1, max_length=1_000)
    step_id: str = Field(min_length=1)
    token: int = Field(ge=1, le=MAX_LONG)
    base_version: dict[str, Long] = Field(default_factory=dict)


class AnswerVerified(Body):
    """A juror's run of the task's tests on an answer's workspace, on synod.task-events.

    Published before the juror's vote, so it precedes the decision in the
    task's log; the planner puts the verdicts on the deciding proposal into the
    outcome. `passed` is None when the tests could not be run (no verdict).
    """

    TYPE: ClassVar[str] = "AnswerVerified"

    proposal_id: str = Field(min_length=1)
    ballot: int = Field(default=1, ge=1, le=MAX_LONG)
    voter: str = Field(min_length=1)
    passed: bool | None = None
    summary: str = Field(default="", max_length=1_000)
    failed: list[str] = Field(default_factory=list, max_length=100)
    duration_s: float = Field(default=0.0, ge=0)


class TaskCompleted(Body):
    TYPE: ClassVar[str] = "TaskCompleted"

    result: str = Field(default="", max_length=MAX_TEXT)
    plan_id: str = ""
    decision_id: str = ""
    steps_completed: int = Field(default=0, ge=0, le=MAX_LONG)
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = Field(default=0.0, ge=0)
    # The reviewers' run of the task's tests on the decided answer (None: the
    # task had no tests, or no reviewer could run them).
    tests_passed: bool | None = None
    tests_summary: str = Field(default="", max_length=1_000)
    # The task's consistency, and the blackboard the answer stands on (key ->
    # value, after reconciling in `eventual`): docs/blackboard.md.
    consistency: Consistency = "strong"
    blackboard: dict[str, str] = Field(default_factory=dict)
    # Set when a person's answer to an escalation decided the outcome.
    approved_by: str = ""
    # `ap` under a partition: the answer rests on a provisional decision; a
    # Reconciled record later confirms it or overturns it (docs/cap.md).
    provisional: bool = False
    partition_mode: PartitionMode = "cp"


class TaskFailed(Body):
    TYPE: ClassVar[str] = "TaskFailed"

    reason: str = Field(min_length=1, max_length=10_000)
    error_class: ErrorClass = "permanent"
    failed_step: str | None = None
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = Field(default=0.0, ge=0)
    tests_passed: bool | None = None
    tests_summary: str = Field(default="", max_length=1_000)
    consistency: Consistency = "strong"
    # A `cp` task that lost its quorum: the voters it could not reach (structured,
    # so an escalation can name them without parsing `reason`).
    unreachable: list[str] = Field(default_factory=list)
    partition_mode: PartitionMode = "cp"
    # A failure the reviewers' decision led to (the answer rejected, no quorum):
    # that decision, and whether it was provisional (`ap` under a partition), so a
    # Reconciled that overturns it reopens the task as it does a TaskCompleted.
    decision_id: str = ""
    provisional: bool = False


class FactPublished(Body):
    """A fact a step adds to its task's blackboard, on synod.task-events (keyed by task).

    A worker publishes its step's facts before its StepCompleted, so the one
    order of the task's log has every fact of a step before the step is done.
    `fact_id` is the fact's tag in the observed-remove map
    (`synod.core.blackboard`), derived from the request and the key;
    `observed` names the facts of the same key the writer had read, which this
    fact replaces. Concurrent facts of one key (neither observed the other) are
    both kept: a conflict that `eventual` tasks reconcile (docs/blackboard.md).
    """

    TYPE: ClassVar[str] = "FactPublished"

    fact_id: str = Field(min_length=1, max_length=200)
    step_id: str = Field(min_length=1)
    key: str = Field(min_length=1, max_length=200)
    value: str = Field(default="", max_length=2_000)
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    author: str = Field(default="", max_length=200)
    observed: list[str] = Field(default_factory=list, max_length=200)


class DeadLetter(Body):
    """A message that could not be handled, kept whole with why, for `synod dlq`.

    `dead_letter_id` is derived from (source_topic, partition, offset), so the
    same record dead-lettered again (a redelivery after a crash, or another
    consumer group failing on it too) is the same dead letter, not a new one.
    """

    TYPE: ClassVar[str] = "DeadLetter"
    TASK_SCOPED: ClassVar[bool] = False

    source_topic: str
    partition: int = Field(ge=0, le=MAX_LONG)
    offset: int = Field(ge=0, le=MAX_LONG)
    key: bytes | None = None
    value: bytes
    headers: list[Header] = Field(default_factory=list)
    error_class: ErrorClass = "permanent"
    reason: str = Field(min_length=1)
    message: str = ""
    attempts: int = Field(default=1, ge=0, le=MAX_LONG)
    first_failed_at: datetime | None = None
    dead_letter_id: str = ""
    last_failed_at: datetime | None = None
    # The envelope's message id when the bytes decoded; a replayed copy keeps it,
    # so consumers' dedup drops the copy if the original was handled after all.
    original_message_id: str | None = None
    # The source record's value length. When it is larger than `value` the value
    # was cut (an oversized record cannot fit in the DLQ whole) and cannot be replayed.
    value_size: int = Field(default=0, ge=0, le=MAX_LONG)


# ---------------------------------------------------------------- budgets and escalation

EscalationKind = Literal["no_quorum", "verification", "budget", "supervisor", "partition"]
AnswerAction = Literal["approve", "reject", "raise_budget", "cancel"]


class UsageReported(Body):
    """Model usage no other record of the task's log carries, on synod.task-events.

    A juror's calls (per proposal, ballot and voter), the planner's own calls,
    and the worst case charged for a call cut off by a cancel: with these, the
    sum of every usage on the log is what the task spent (docs/adr/0011).
    `request_id` is what the calls were made for: a StepRequested id, the
    proposal id of a vote, "" for the planner's own.
    """

    TYPE: ClassVar[str] = "UsageReported"

    request_id: str = ""
    what: str = Field(default="", max_length=300)  # plan, juror, cancelled
    voter: str = ""
    usage: Usage = Field(default_factory=Usage)


class EscalationRequested(Body):
    """A supervisor (or operator) asks the planner to put the task to a person."""

    TYPE: ClassVar[str] = "EscalationRequested"

    reason: str = Field(min_length=1, max_length=1_000)


class EscalationRaised(Body):
    """The planner put the task to a person and parked it (synod.task-events,
    forwarded to synod.escalations, keyed by task).

    `candidates` are what an approval may pick; `ballot` is the proposal they
    were voted on in (empty when nothing was put to a vote).
    """

    TYPE: ClassVar[str] = "EscalationRaised"

    escalation_id: str = Field(min_length=1)
    kind: EscalationKind
    reason: str = Field(min_length=1, max_length=10_000)
    proposal_id: str = ""
    candidates: list[Candidate] = Field(default_factory=list)
    timeout_s: float = Field(default=86_400.0, gt=0)


class EscalationAnswered(Body):
    """A person's answer to an escalation: who, when and what.

    Its message id derives from the escalation id, so an escalation has at most
    one answer on the log: a second one is the same record, dropped as a
    duplicate. Sent to synod.escalations; the planner appends it to the log.
    """

    TYPE: ClassVar[str] = "EscalationAnswered"

    escalation_id: str = Field(min_length=1)
    action: AnswerAction
    principal: str = Field(min_length=1, max_length=200)
    answered_at: datetime
    candidate_id: str | None = None  # approve: which candidate
    guidance: str = Field(default="", max_length=10_000)  # reject: what to change
    budget: Budget | None = None  # raise_budget: the new limits

    @model_validator(mode="after")
    def _fields_match_action(self) -> EscalationAnswered:
        if self.action == "approve" and not self.candidate_id:
            raise ValueError("an approval names the candidate it approves (candidate_id)")
        if self.action == "reject" and not self.guidance.strip():
            raise ValueError("a rejection says what to change (guidance)")
        if self.action == "raise_budget" and self.budget is None:
            raise ValueError("raise_budget carries the new budget (budget)")
        return self


class TaskCancelRequested(Body):
    """Stop a task: it ends with TaskFailed(cancelled). On synod.tasks; the planner
    appends it to the task's log."""

    TYPE: ClassVar[str] = "TaskCancelRequested"

    principal: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=1_000)


BODY_TYPES: dict[str, type[Body]] = {
    cls.TYPE: cls
    for cls in (
        TaskSubmitted,
        PlanProposed,
        StepRequested,
        StepCompleted,
        StepFailed,
        StepRetrying,
        VoteRequested,
        Vote,
        Decision,
        BallotDeadline,
        Reconciled,
        Reachability,
        Heartbeat,
        StepReassigned,
        StepClaimed,
        StepCancelled,
        QuarantineNotice,
        FileWritten,
        LeaseGranted,
        AnswerVerified,
        TaskCompleted,
        TaskFailed,
        DeadLetter,
        FactPublished,
        UsageReported,
        EscalationRequested,
        EscalationRaised,
        EscalationAnswered,
        TaskCancelRequested,
    )
}

# ---------------------------------------------------------------- envelope

B = TypeVar("B", bound=Body)


def new_message_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class Envelope(WireModel, Generic[B]):
    """What travels on every topic: routing, causality and tracing around a body.

    `task_id` is the partition key of every task-scoped message (one task, one
    partition, one order); heartbeats and dead letters have none.
    """

    message_id: str = Field(default_factory=new_message_id, min_length=1, max_length=200)
    task_id: str | None = Field(default=None, min_length=1, max_length=200)
    type: str
    sender: Sender = Field(default_factory=lambda: Sender(role="client", instance="unknown"))
    causes: list[str] = Field(default_factory=list)
    vclock: dict[str, Long] = Field(default_factory=dict)
    lamport: int = Field(default=0, ge=0, le=MAX_LONG)
    # Hybrid logical clock, `wall_ms << 16 | logical` (synod.core.ordering.hlc); 0: unstamped.
    hlc: int = Field(default=0, ge=0, le=MAX_LONG)
    # Where each cause was seen (message id -> topic), so a consumer that reads that
    # topic knows to wait for it (synod.core.ordering.buffer); causes not named here
    # travel on topics the sender could not tell.
    cause_topics: dict[str, str] = Field(default_factory=dict)
    attempt: int = Field(default=0, ge=0, le=MAX_LONG)
    created_at: datetime = Field(default_factory=utc_now)
    trace: TraceContext = Field(default_factory=TraceContext)
    body: B
    # Authorship (synod.transport.authorship, ADR 0014): the principal whose key
    # signed this message, and its Ed25519 signature (base64) over the message's
    # id, task, type, sender and body. Empty: unsigned (a client, or no keyring).
    signer: str = Field(default="", max_length=200)
    signature: str = Field(default="", max_length=200)

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # Naive timestamps are ambiguous across hosts; read them as UTC.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _type_matches_body(self) -> Envelope[B]:
        expected = type(self.body).TYPE
        if self.type != expected:
            raise ValueError(f"type is {self.type!r} but the body is a {expected}")
        if type(self.body).TASK_SCOPED and self.task_id is None:
            raise ValueError(f"a {expected} needs a task_id (it is the partition key)")
        return self

    @classmethod
    def new(
        cls, body: B, *, sender: Sender, task_id: str | None = None, **fields: Any
    ) -> Envelope[B]:
        """Wrap a body; `type` comes from the body's class."""
        concrete = envelope_class(type(body).TYPE)
        made = concrete(type=type(body).TYPE, body=body, sender=sender, task_id=task_id, **fields)
        return cast("Envelope[B]", made)

    @property
    def key(self) -> bytes | None:
        """The Kafka key: the task id, or the instance id for heartbeats."""
        if self.task_id is not None:
            return self.task_id.encode()
        if isinstance(self.body, Heartbeat | QuarantineNotice):
            return self.body.instance.encode()
        return None


# pydantic keeps its parametrized classes in a weak cache: after a GC pass
# `Envelope[Body]` is built again (~2.5 ms, on every decode that follows), so
# the classes of the known types are held here for the life of the process.
_ENVELOPE_CLASSES: dict[str, type[Envelope[Any]]] = {}


def envelope_class(type_name: str) -> type[Envelope[Any]]:
    """The concrete `Envelope[Body]` class for a message type name (one per process)."""
    cls = _ENVELOPE_CLASSES.get(type_name)
    if cls is None:
        try:
            body_cls = BODY_TYPES[type_name]
        except KeyError:
            raise KeyError(f"unknown message type {type_name!r}") from None
        cls = _ENVELOPE_CLASSES[type_name] = Envelope[body_cls]  # type: ignore[valid-type]
    return cls
