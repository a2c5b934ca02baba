"""What one task's log folds into: the fields every concern of the task core reads.

`TaskState` is plain data. The fold (`fold.py`) writes it, in log order; the
deciding modules (dispatch, hedging, slots, workspace, answer) read it and
return records to publish. Only `machine.py` puts the two together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from synod.core.blackboard import Blackboard, Fact
from synod.core.plan.dag import Plan
from synod.core.plan.teampolicy import SharedList, TeamLabelError, TeamMode, team_of
from synod.core.task.actions import Action, Publish
from synod.core.task.lanes import OwnerMap
from synod.core.task.phase import Phase
from synod.core.workspace import Sibling
from synod.errors import ConfigError
from synod.wire import (
    AnswerVerified,
    Decision,
    Envelope,
    PlanProposed,
    Reconciled,
    StepCompleted,
    StepFailed,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    VoteRequested,
)
from synod.wire.messages import (
    Allowance,
    Budget,
    EscalationAnswered,
    EscalationRaised,
    EscalationRequested,
    StepReassigned,
    TaskCancelRequested,
    Usage,
)

ANSWER = "answer"  # the candidate id of the team's answer
# Permanent failures another attempt can still fix: an attempt is a new sample
# (the attempt number seeds it), so output that stayed invalid after the repair
# turn may well be valid next time. Bad requests, auth and refusals stay final.
RESAMPLE_REASONS = frozenset({"invalid_output"})
MERGE_PREFIX = "merge:"  # step ids of merge steps: `merge:<path>`, outside the plan's DAG
MAX_MERGE_ROUNDS = 3  # merges of one file before the task fails naming its conflict


@dataclass(frozen=True)
class TaskConfig:
    max_step_attempts: int = 3
    max_answer_rounds: int = 2
    step_deadline_s: float = 120.0
    vote_deadline_s: float = 60.0
    # Hedging (tasks given with a plan, synod mode): a step out at least this
    # nearest-rank quantile of the task's finished steps' durations is requested
    # once more. In the plan's tail (every unfinished step is out) of a team of
    # known size (label `team.agents`), the lower `tail_hedge_quantile` applies
    # and up to `max_hedges` copies go out while agents are free (docs/teams.md).
    hedge: bool = True
    hedge_quantile: float = 0.95
    hedge_min_samples: int = 5
    tail_hedge_quantile: float | None = 0.25
    max_hedges: int = 1
    # Budgets and escalation (docs/adr/0011): the budget of a task that names
    # none; whether an undecided task goes to a person; how long one waits.
    default_budget: Budget | None = None
    escalate: bool = False
    escalation_timeout_s: float = 86_400.0
    # A partition's owner counts for routing a hedge copy (lanes.py) while its
    # newest heartbeat is at most this old: a few heartbeat intervals (1 s).
    owner_fresh_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_step_attempts < 1:
            raise ConfigError(f"max_step_attempts must be >= 1, got {self.max_step_attempts}")
        if not 0.0 < self.hedge_quantile <= 1.0:
            raise ConfigError(f"hedge_quantile must be in (0, 1], got {self.hedge_quantile}")
        if self.hedge_min_samples < 1:
            raise ConfigError(f"hedge_min_samples must be >= 1, got {self.hedge_min_samples}")
        tail = self.tail_hedge_quantile
        if tail is not None and not 0.0 < tail <= 1.0:
            raise ConfigError(f"tail_hedge_quantile must be in (0, 1], got {tail}")
        if self.max_hedges < 1:
            raise ConfigError(f"max_hedges must be >= 1, got {self.max_hedges}")


@dataclass
class TaskState:
    task_id: str
    config: TaskConfig = field(default_factory=TaskConfig)
    # Expected step durations, to rank by critical path; None: every step counts 1
    # (a plan on the wire carries no durations; the simulator may know them).
    estimates: Mapping[str, float] | None = None
    phase: Phase = Phase.NEW
    submitted: Envelope[TaskSubmitted] | None = None
    plan: PlanProposed | None = None
    plan_error: str | None = None
    requested: dict[str, int] = field(default_factory=dict)  # step -> newest attempt
    completed: dict[str, StepCompleted] = field(default_factory=dict)
    failures: dict[str, list[StepFailed]] = field(default_factory=dict)
    failed_attempts: dict[str, set[int]] = field(default_factory=dict)
    vote: VoteRequested | None = None  # the newest round's
    decision: Decision | None = None  # on the newest round's proposal
    revised_in: dict[str, int] = field(default_factory=dict)  # step -> round of its revision
    revision_floor: dict[str, int] = field(default_factory=dict)  # step -> first valid attempt
    completed_attempt: dict[str, int] = field(default_factory=dict)
    # The supervisor's newest StepReassigned per step: later attempts use its
    # parameters, and each reassignment grants one attempt beyond the budget.
    reassigned: dict[str, StepReassigned] = field(default_factory=dict)
    extra_attempts: dict[str, int] = field(default_factory=dict)
    # Reviewers the supervisor quarantined (an input event, not in the task's
    # log); only read when an electorate is picked.
    quarantined: frozenset[str] = frozenset()
    outcome: TaskCompleted | TaskFailed | None = None
    # Partitions (docs/cap.md): the Reconciled records of the task's provisional
    # decisions, and the decisions they overturned (each reopened the task).
    verdicts: dict[str, Reconciled] = field(default_factory=dict)
    overturned: list[str] = field(default_factory=list)
    requested_at: dict[str, datetime] = field(default_factory=dict)  # step -> newest request
    attempt_at: dict[tuple[str, int], datetime] = field(default_factory=dict)
    hedged: dict[str, int] = field(default_factory=dict)  # step -> hedge requests folded
    keys: dict[tuple[str, int], str] = field(default_factory=dict)  # (step, attempt) -> key
    # The jurors' runs of the task's tests: proposal -> voter -> newest run.
    test_runs: dict[str, dict[str, AnswerVerified]] = field(default_factory=dict)
    # Claim teams: the shared list's claims (made in the fold, so a function of
    # the log); which claims and cancels are already recorded in the log.
    shared_list: SharedList | None = None
    claims_logged: set[str] = field(default_factory=set)
    cancels_logged: set[str] = field(default_factory=set)
    # Attempts a worker parked in a retry topic: step -> (attempt, the time by which
    # its rerun ends at the latest: due time plus the step's deadline).
    parked: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    dag: Plan | None = None
    ranks: dict[str, int] | None = None  # the dag's critical-path ranks, once known
    team_labels: tuple[TeamMode, int | None] | None = None  # the labels' team, once read
    # Workspace (workspace.py): what each request was told to build on, leases
    # granted, and the merge steps of eventual consistency.
    ws_bases: dict[tuple[str, int], dict[str, dict[str, int]]] = field(default_factory=dict)
    ws_tokens: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    ws_newest_token: dict[str, int] = field(default_factory=dict)  # path -> newest token
    merge_requested: dict[str, int] = field(default_factory=dict)  # merge step -> newest attempt
    merge_finished: dict[str, int] = field(default_factory=dict)  # merge step -> newest ended
    merges_completed: dict[str, StepCompleted] = field(default_factory=dict)
    ws_handed: dict[str, dict[str, int]] = field(default_factory=dict)  # not yet folded back
    # The adapter's answer to the last CheckWorkspace: (winners it read, conflicts).
    ws_check: tuple[tuple[tuple[str, str], ...], dict[str, tuple[Sibling, ...]]] | None = None
    # The blackboard (knowledge.py): the CRDT of the task's FactPublished records
    # and the operations in log order; the facts each request was handed; where
    # requests and completions fell in the log (stale reads); the reconcile step.
    board: Blackboard = field(default_factory=Blackboard)
    fact_ops: list[tuple[Fact, tuple[str, ...]]] = field(default_factory=list)
    read_facts: dict[tuple[str, int], frozenset[str]] = field(default_factory=dict)
    seq: int = 0
    requested_seq: dict[tuple[str, int], int] = field(default_factory=dict)
    done_seq: dict[tuple[str, int], int] = field(default_factory=dict)
    reconcile_requested: int = -1
    reconcile_finished: int = -1
    reconciled: StepCompleted | None = None
    reconcile_failures: list[StepFailed] = field(default_factory=list)
    # Inputs from outside the log: the latest time, the plan the model made, the
    # step topics' owners (role -> map; only read when a hedge's lane is picked).
    now: datetime | None = None
    owners: Mapping[str, OwnerMap] = field(default_factory=dict)
    made_plan: Publish | None = None
    # Outputs: records of the log to forward (one-shot, per delivery), and the
    # ids of what the adapter carried out (`advance`) and so is not said again.
    outbox: list[Action] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    # Budget (budget.py): usage per record, per request; grants (request ->
    # allowance, jurors, is a step); requests that ended; calls refused.
    spent_by: dict[str, Usage] = field(default_factory=dict)
    spent_under: dict[str, Usage] = field(default_factory=dict)
    grants: dict[str, tuple[Allowance, int, bool]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    refusals: list[Allowance] = field(default_factory=list)  # allowances a worker refused
    granted_requests: set[str] = field(default_factory=set)
    juror_ballots: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    decided_ballot: dict[str, int] = field(default_factory=dict)
    refusals_at_raise: int = 0
    raised_budget: Budget | None = None
    # Escalation (escalation.py): raised and answered (with their log times),
    # a rejection's guidance and the round it asks for, time parked, a cancel.
    escalations: dict[str, tuple[EscalationRaised, datetime]] = field(default_factory=dict)
    answers: dict[str, tuple[EscalationAnswered, datetime]] = field(default_factory=dict)
    guidance: tuple[str, int] | None = None
    parked_s: float = 0.0
    cancel: TaskCancelRequested | None = None
    escalation_asked: EscalationRequested | None = None

    @property
    def settled(self) -> bool:
        """Whether the task is over for good: an outcome, and not one resting on a
        provisional decision that no Reconciled record has judged yet (after the
        heal that record may reopen the task, so its state must stay)."""
        outcome = self.outcome
        if outcome is None:
            return False
        return not (outcome.provisional and outcome.decision_id not in self.verdicts)

    def rank(self) -> dict[str, int]:
        """Dispatch rank of each plan step (0 first): critical path first."""
        if self.ranks is None:
            assert self.dag is not None
            self.ranks = self.dag.critical_path_rank(self.estimates)
        return self.ranks

    def team(self) -> tuple[TeamMode, int | None]:
        """(mode, slots) from the task's labels; bad labels run as synod (see team_error)."""
        assert self.submitted is not None
        if self.team_labels is not None:
            return self.team_labels
        team: tuple[TeamMode, int | None] = ("synod", None)
        with contextlib.suppress(TeamLabelError):
            team = team_of(self.submitted.body.labels)
        self.team_labels = team
        return team

    def team_error(self) -> str | None:
        assert self.submitted is not None
        try:
            team_of(self.submitted.body.labels)
        except TeamLabelError as exc:
            return str(exc)
        return None

    def team_size(self) -> int | None:
        """The `team.agents` cap on attempts in flight, None if uncapped."""
        assert self.submitted is not None
        cap = self.submitted.body.labels.get("team.agents", "")
        return int(cap) if cap.isdigit() else None


def round_of(proposal_id: str) -> int:
    """`<task>/answer` is round 1, `<task>/answer-N` round N."""
    _, _, tail = proposal_id.rpartition(f"/{ANSWER}")
    return int(tail[1:]) if tail.startswith("-") and tail[1:].isdigit() else 1


def revision_round(state: TaskState) -> int:
    return max(state.revised_in.values(), default=1)
