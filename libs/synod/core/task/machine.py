"""One task's life as a state machine (sans-I/O): fold its log, say what is next.

The planner keeps no state of its own. A task's state is the fold of its
messages on `synod.task-events` (`apply`), and what the planner must do next
is a pure function of that state (`next_actions`). A restarted planner folds
the log again and carries on; handling an event twice is harmless because
every action has an id derived from what it is (`derived_id`), so a repeated
action is a duplicate that consumers drop.

    submitted -> planned -> steps requested / completed (retried if transient)
              -> answer put to the vote -> decision -> TaskCompleted | TaskFailed

An answer the reviewers reject is not the end while answer rounds are left:
the steps that produced it run again as a revision (a new attempt, so a new
sample, told that it was rejected) and round 2 votes on the new answer. A vote
that found no quorum is put again as is. Each round is its own proposal
(`<task>/answer`, then `<task>/answer-2`, ...), so the consensus service needs
no notion of rounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from synod.core.plan.dag import Plan, PlanError
from synod.core.plan.teampolicy import (
    SharedList,
    TeamLabelError,
    TeamMode,
    central_lists,
    central_next,
    team_of,
)
from synod.core.plan.verdicts import verdict_of_runs
from synod.core.workspace import Sibling, VersionVector, written_version
from synod.ids import derived_id
from synod.wire import (
    AnswerVerified,
    Body,
    Candidate,
    Decision,
    Envelope,
    PlanProposed,
    PlanStep,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    Usage,
    Verification,
    VoteRequested,
)
from synod.wire.messages import (
    StepCancelled,
    StepClaimed,
    StepReassigned,
    StepRetrying,
    routing_labels,
)

Destination = Literal["steps.researcher", "steps.coder", "steps.cancel", "votes", "results"]
ANSWER = "answer"  # the candidate id of the team's answer
# Permanent failures another attempt can still fix: an attempt is a new sample
# (the attempt number seeds it), so output that stayed invalid after the repair
# turn may well be valid next time. Bad requests, auth and refusals stay final.
RESAMPLE_REASONS = frozenset({"invalid_output"})
MERGE_PREFIX = "merge:"  # step ids of merge steps: `merge:<path>`, outside the plan's DAG
MAX_MERGE_ROUNDS = 3  # merges of one file before the task fails naming its conflict


@dataclass(frozen=True)
class Publish:
    """Append `body`, with this id, to the task's log."""

    body: Body
    message_id: str
    attempt: int = 0
    causes: tuple[str, ...] = ()


def _round_of(proposal_id: str) -> int:
    """`<task>/answer` is round 1, `<task>/answer-N` round N."""
    _, _, tail = proposal_id.rpartition(f"/{ANSWER}")
    return int(tail[1:]) if tail.startswith("-") and tail[1:].isdigit() else 1


def _revision_round(prompt_variant: str) -> int | None:
    head, _, number = prompt_variant.partition("revise-")
    return int(number) if not head and number.isdigit() else None


def electorate(size: int, quarantined: frozenset[str]) -> list[str]:
    """`size` reviewers by index, skipping quarantined ones (the next index stands in)."""
    picked = [f"reviewer-{i}" for i in range(size + len(quarantined))]
    return [r for r in picked if r not in quarantined][:size]


def forward_to(envelope: Envelope[Any]) -> Destination | None:
    """Where a record of the task's log goes next, once it is in the log.

    The log is the planner's outbox: a step request, a vote request or an
    outcome reaches its topic only from the log, so a crash between the two
    writes cannot lose it (the log record is handled again, and forwarded
    again with the same id).
    """
    body = envelope.body
    if envelope.sender.role != "planner":
        return None
    if isinstance(body, StepRequested):
        return "steps.coder" if body.role == "coder" else "steps.researcher"
    if isinstance(body, StepCancelled):
        return "steps.cancel"
    if isinstance(body, VoteRequested):
        return "votes"
    if isinstance(body, TaskCompleted | TaskFailed):
        return "results"
    return None


@dataclass(frozen=True)
class RequestPlan:
    """Ask the planner model for a plan (the adapter's one call out)."""

    attempt: int


Action = Publish | RequestPlan


@dataclass(frozen=True)
class TaskConfig:
    max_step_attempts: int = 3
    max_answer_rounds: int = 2
    step_deadline_s: float = 120.0
    vote_deadline_s: float = 60.0
    # Hedging (tasks given with a plan): a step out longer than this quantile of
    # the task's finished steps' durations is requested once more.
    hedge_quantile: float = 0.95
    hedge_min_samples: int = 5


@dataclass
class TaskMachine:
    task_id: str
    config: TaskConfig = field(default_factory=TaskConfig)
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
    # Reviewers the supervisor quarantined; set by the planner, not folded (not
    # in the task's log), and only read when an electorate is picked.
    quarantined: frozenset[str] = frozenset()
    outcome: TaskCompleted | TaskFailed | None = None
    plan_attempts: int = 0
    requested_at: dict[str, datetime] = field(default_factory=dict)  # step -> newest request
    hedged: set[str] = field(default_factory=set)
    # The jurors' runs of the task's tests: proposal -> voter -> newest run.
    test_runs: dict[str, dict[str, AnswerVerified]] = field(default_factory=dict)
    # Claim teams: the shared list's claims (made in `apply`, so a function of
    # the log); which claims and cancels are already recorded in the log.
    shared_list: SharedList | None = None
    claims_logged: set[str] = field(default_factory=set)
    cancels_logged: set[str] = field(default_factory=set)
    # Attempts a worker parked in a retry topic: step -> (attempt, the time by which
    # its rerun ends at the latest: due time plus the step's deadline).
    parked: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _dag: Plan | None = None
    # Workspace (the section "workspace" below): what each request was told to
    # build on, leases granted, and the merge steps of eventual consistency.
    ws_bases: dict[tuple[str, int], dict[str, dict[str, int]]] = field(default_factory=dict)
    ws_tokens: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    ws_newest_token: dict[str, int] = field(default_factory=dict)  # path -> newest token
    merge_requested: dict[str, int] = field(default_factory=dict)  # merge step -> newest attempt
    merge_finished: dict[str, int] = field(default_factory=dict)  # merge step -> newest ended
    merges_completed: dict[str, StepCompleted] = field(default_factory=dict)
    _ws_handed: dict[str, dict[str, int]] = field(default_factory=dict)  # not yet folded back

    # ------------------------------------------------------------ fold

    def apply(self, envelope: Envelope[Any]) -> bool:
        """Fold one message of the task's log; False if it was already folded."""
        if envelope.message_id in self._seen:
            return False
        self._seen.add(envelope.message_id)
        body = envelope.body
        if self._fold_workspace(envelope):
            return True
        if isinstance(body, TaskSubmitted):
            if self.submitted is None:
                self.submitted = envelope
        elif isinstance(body, PlanProposed):
            if self.plan is None:
                self.plan = body
                try:
                    self._dag = Plan.from_steps(body.steps)
                except PlanError as exc:
                    self.plan_error = str(exc)
                self._start_shared_list()
        elif isinstance(body, StepRequested):
            self.requested[body.step_id] = max(
                envelope.attempt, self.requested.get(body.step_id, -1)
            )
            if envelope.attempt == self.requested[body.step_id]:
                self.requested_at[body.step_id] = envelope.created_at
            if body.prompt_variant == "hedge":
                self.hedged.add(body.step_id)
            revision = _revision_round(body.prompt_variant)
            if revision and revision > self.revised_in.get(body.step_id, 1):
                # The rejected output no longer counts; only the revision's will.
                self.revised_in[body.step_id] = revision
                self.revision_floor[body.step_id] = envelope.attempt
                self.completed.pop(body.step_id, None)
        elif isinstance(body, StepCompleted):
            valid = envelope.attempt >= self.revision_floor.get(body.step_id, 0)
            if valid and body.step_id not in self.completed:
                self.completed_attempt[body.step_id] = envelope.attempt
                self.completed[body.step_id] = body
                if self.shared_list is not None:
                    self.shared_list.finished(body.step_id, self.completed)
        elif isinstance(body, StepFailed):
            self.failures.setdefault(body.step_id, []).append(body)
            self.failed_attempts.setdefault(body.step_id, set()).add(envelope.attempt)
        elif isinstance(body, VoteRequested):
            if self.vote is None or _round_of(body.proposal_id) > _round_of(self.vote.proposal_id):
                self.vote, self.decision = body, None
        elif isinstance(body, Decision):
            if self.vote is not None and body.proposal_id == self.vote.proposal_id:
                self.decision = self.decision or body
        elif isinstance(body, TaskCompleted | TaskFailed):
            self.outcome = self.outcome or body
        elif isinstance(body, StepReassigned):
            if not self._parked_then(body, envelope.created_at):
                self._apply_reassignment(body)
        elif isinstance(body, AnswerVerified):
            runs = self.test_runs.setdefault(body.proposal_id, {})
            if body.voter not in runs or body.ballot >= runs[body.voter].ballot:
                runs[body.voter] = body
        elif isinstance(body, StepClaimed):
            self.claims_logged.add(body.step_id)
        elif isinstance(body, StepCancelled):
            self.cancels_logged.add(body.step_id)
        elif isinstance(body, StepRetrying):
            self._apply_retrying(body, envelope.attempt)
        return True

    # ------------------------------------------------------------ retry topics

    def _apply_retrying(self, body: StepRetrying, attempt: int) -> None:
        """The attempt waits in a retry topic and runs again at `due_at`: it is not
        lost, so its clock (hedging, the stuck check) starts again from then."""
        if attempt != self.requested.get(body.step_id):
            return  # an older attempt's retry; the newest one is what is out
        self.parked[body.step_id] = (attempt, body.due_at + timedelta(seconds=body.deadline_s))
        self.requested_at[body.step_id] = max(self.requested_at[body.step_id], body.due_at)

    def _parked_then(self, body: StepReassigned, at: datetime) -> bool:
        """True for a "stuck" reassignment of an attempt that was only waiting in a
        retry topic: made before the attempt's rerun could have ended, it would
        start a duplicate attempt."""
        parked = self.parked.get(body.step_id)
        if body.reason != "stuck" or parked is None or parked[0] != body.after_attempt:
            return False
        return at < parked[1]

    def _apply_reassignment(self, body: StepReassigned) -> None:
        step_id = body.step_id
        if self.outcome is not None:
            return  # a finished task is never redone
        if step_id in self.completed:
            looped = body.reason == "loop" and self.completed_attempt[step_id] <= body.after_attempt
            if not looped:
                return  # a finished step is never redone
            # The completion repeated an earlier output: it does not count, and the
            # answer gets another round once the new attempt is in.
            self.completed.pop(step_id)
            self.revision_floor[step_id] = body.after_attempt + 1
            # The looping output may already be out for a vote this machine has
            # asked for but not yet folded back: the round of the revision it was
            # (or the newest vote) is spent, the new attempt gets the next one.
            voted = _round_of(self.vote.proposal_id) if self.vote is not None else 1
            self.revised_in[step_id] = max(voted, self._revision_round()) + 1
        self.reassigned[step_id] = body
        self.extra_attempts[step_id] = self.extra_attempts.get(step_id, 0) + 1

    # ------------------------------------------------------------ react

    def next_actions(self) -> list[Action]:
        if self.outcome is not None or self.submitted is None:
            return []
        task = self.submitted.body
        if self.plan is None:
            if task.plan:
                given = PlanProposed(plan_id="p1", steps=task.plan, rationale="given with the task")
                return [self._publish(given, "plan")]
            return [RequestPlan(attempt=self.plan_attempts)]
        if self.plan_error is not None:
            return [self._fail(f"the plan is invalid: {self.plan_error}", "permanent")]
        team_error = self._team_error()
        if team_error is not None:
            return [self._fail(team_error, "permanent")]
        assert self._dag is not None
        failed = self._failed_for_good()
        if failed is not None:
            step_id, why = failed
            return [self._fail(why, self.failures[step_id][-1].error_class, step_id)]
        if len(self.completed) < len(self._dag.ids):
            return self._dispatch()
        if self._merging():
            return []  # the answer is voted on once the workspace's conflicts are merged
        if self.vote is None:
            return [self._request_vote(1)]
        voted = _round_of(self.vote.proposal_id)
        if self._revision_round() > voted:
            return [self._request_vote(voted + 1)]
        if self.decision is None:
            return []
        if self.decision.outcome != ANSWER and voted < self.config.max_answer_rounds:
            if self.decision.outcome == "no_quorum":
                return [self._request_vote(voted + 1)]  # nobody judged it: ask again
            return self._revise(voted + 1)
        return [self._conclude()]

    def overdue(self, now: datetime) -> Action | None:
        """TaskFailed once the task's own deadline has passed, else None.

        The backstop that makes every task end: whatever was lost or stuck
        (a step no worker will ever answer, a ballot that never closes), the
        task fails with a reason that says what it was waiting for. Time is an
        input; the planner sweeps its tasks with the wall clock.
        """
        if self.outcome is not None or self.submitted is None:
            return None
        budget = self.submitted.body.deadline_s
        if now < self.submitted.created_at + timedelta(seconds=budget):
            return None
        return self._fail(
            f"the task's deadline of {budget:g} s passed while waiting for {self._waiting_for()}",
            "budget",
        )

    def _room(self) -> int | None:
        """Attempts this task may still start (label `team.agents`), None if uncapped.

        A coder instance takes several requests at once, so a team of N agents is
        N attempts in flight, not N instances.
        """
        assert self.submitted is not None
        cap = self.submitted.body.labels.get("team.agents", "")
        if not cap.isdigit():
            return None
        out = 0
        for step_id, newest in self.requested.items():
            if step_id in self.completed or newest in self.failed_attempts.get(step_id, ()):
                continue
            out += 2 if step_id in self.hedged else 1
        return int(cap) - out

    def hedges(self, now: datetime) -> list[Action]:
        """Another request for each straggler: out past the p95 of finished steps.

        Only for tasks given with a plan (the team runs) in synod mode, once per
        step. The first result wins (`apply` keeps the first completion); the
        other attempt is cancelled (`cancels`).
        """
        if self.outcome is not None or self.submitted is None or self._dag is None:
            return []
        if not self.submitted.body.plan or self._team()[0] != "synod":
            return []  # the paper's teams (central, claim) did not hedge
        done = sorted(c.duration_s for c in self.completed.values())
        if len(done) < self.config.hedge_min_samples:
            return []
        cut = done[min(len(done) - 1, int(self.config.hedge_quantile * len(done)))]
        actions: list[Action] = []
        room = self._room()
        for step_id, at in self.requested_at.items():
            newest = self.requested[step_id]
            if step_id in self.completed or step_id in self.hedged:
                continue
            if room is not None and room <= 0:
                break  # hedge only when an agent is free
            if newest in self.failed_attempts.get(step_id, ()):
                continue  # a retry is due instead
            if (now - at).total_seconds() <= cut:
                continue
            body = self._step_body(step_id).model_copy(update={"prompt_variant": "hedge"})
            actions.append(self._publish(body, f"step/{step_id}/{newest + 1}", newest + 1))
            if room is not None:
                room -= 1
        return actions

    def _waiting_for(self) -> str:
        if self.plan is None:
            return "a plan"
        if self._dag is not None and len(self.completed) < len(self._dag.ids):
            pending = [s for s in self._dag.ids if s not in self.completed]
            return "steps " + ", ".join(pending)
        return "the reviewers' decision"

    def _revision_round(self) -> int:
        return max(self.revised_in.values(), default=1)

    def _revise(self, round_: int) -> list[Action]:
        """Run the steps behind a rejected answer again, as round `round_`'s candidates."""
        assert self._dag is not None
        assert self.decision is not None
        actions: list[Action] = []
        for step_id in self._answer_steps():
            attempt = self.requested.get(step_id, 0) + 1
            # The revision rewrites the step's files (the plain request's): the next
            # answer, and the tests the reviewers run on it, is the workspace with them.
            body = self._step_body(step_id)
            body = body.model_copy(
                update={
                    "instructions": f"{body.instructions}\n\nThe reviewers did not accept the "
                    f"previous answer (outcome {self.decision.outcome}, tally "
                    f"{dict(self.decision.tally)}). Revise it.",
                    "prompt_variant": f"revise-{round_}",
                }
            )
            actions.append(self._publish(body, f"step/{step_id}/{attempt}", attempt))
        return actions

    # ------------------------------------------------------------ teams

    def _team(self) -> tuple[TeamMode, int | None]:
        """(mode, slots) from the task's labels; bad labels run as synod (see _team_error)."""
        assert self.submitted is not None
        try:
            return team_of(self.submitted.body.labels)
        except TeamLabelError:
            return "synod", None

    def _team_error(self) -> str | None:
        assert self.submitted is not None
        try:
            team_of(self.submitted.body.labels)
        except TeamLabelError as exc:
            return str(exc)
        return None

    def _start_shared_list(self) -> None:
        """A claim team's first claims, as soon as the plan is known (one per slot)."""
        if self._dag is None or self.submitted is None:
            return
        mode, n = self._team()
        if mode == "claim" and n is not None:
            self.shared_list = SharedList(self._dag, n)
            self.shared_list.start()

    def _dispatch_to_slots(self, mode: TeamMode, n: int) -> list[Action]:
        """Central and claim teams: each slot runs one step at a time, of its own choosing.

        A claim is logged (StepClaimed, blocked or not) before the slot's request,
        so the run's report can count blocked claims from the log.
        """
        assert self._dag is not None
        actions: list[Action] = []
        if mode == "central":
            picks = central_next(self._dag, central_lists(self._dag, n), self.completed)
        else:
            assert self.shared_list is not None
            for claim in self.shared_list.claims:
                if claim.step_id not in self.claims_logged:
                    body = StepClaimed(
                        step_id=claim.step_id, agent=claim.agent, blocked_on=list(claim.blocked_on)
                    )
                    actions.append(self._publish(body, f"claim/{claim.step_id}"))
            picks = self.shared_list.runnable(self.completed)
        for slot, step_id in picks:
            attempt = self._attempt_due(step_id)
            if attempt is not None:
                actions.append(self._step_request(step_id, attempt, slot))
        return actions

    def cancels(self) -> list[Action]:
        """Stop the losing attempt of each hedged step that has a winner.

        The first completion won (`apply`); the other attempt (the straggler or
        the hedge) is still running on some coder. Its request ids go out in a
        StepCancelled that every worker reads; its writes are left out of the
        workspace by `fold(winners=...)` in any case.
        """
        actions: list[Action] = []
        for step_id in sorted(self.hedged):
            won = self.completed_attempt.get(step_id)
            if step_id not in self.completed or won is None or step_id in self.cancels_logged:
                continue
            newest = self.requested[step_id]
            # A hedge is the newest attempt and the straggler the one before it.
            losers = [
                a
                for a in (newest - 1, newest)
                if a >= 0 and a != won and a not in self.failed_attempts.get(step_id, ())
            ]
            if not losers:
                continue
            body = StepCancelled(
                step_id=step_id,
                request_ids=[derived_id(self.task_id, f"step/{step_id}/{a}") for a in losers],
                attempts=losers,
                reason="hedge_lost",
            )
            actions.append(self._publish(body, f"cancel/{step_id}"))
        return actions

    def _step_body(self, step_id: str, agent: int | None = None) -> StepRequested:
        """The plain request for a step: its plan entry and its dependencies' outputs."""
        assert self._dag is not None
        step = self._dag.step(step_id)
        return StepRequested(
            step_id=step_id,
            plan_id=self.plan.plan_id if self.plan else "",
            role="coder" if step.role == "coder" else "researcher",
            title=step.title,
            instructions=step.description or step.title,
            inputs={dep: self.completed[dep].output for dep in step.depends_on},
            deadline_s=self.config.step_deadline_s,
            files=list(step.files),
            agent=agent,
        )

    def _step_request(self, step_id: str, attempt: int, agent: int | None = None) -> Publish:
        body = self._step_body(step_id, agent)
        change = self.reassigned.get(step_id)
        if change is not None:
            body = body.model_copy(
                update={
                    "model": change.model,
                    "temperature": change.temperature,
                    "prompt_variant": change.prompt_variant,
                    "instructions": f"{body.instructions}\n\nEarlier attempts at this step "
                    f"did not work ({change.reason}); take a different approach.",
                }
            )
        return self._publish(body, f"step/{step_id}/{attempt}", attempt)

    def _dispatch(self) -> list[Action]:
        assert self._dag is not None
        mode, n = self._team()
        if mode != "synod" and n is not None:
            return self._dispatch_to_slots(mode, n)
        actions: list[Action] = []
        # Critical path first (the Scheduler's rank): the pool takes requests
        # roughly in the order they are logged, so the log order is the priority.
        rank = self._dag.critical_path_rank()
        ready = sorted(self._dag.ready(frozenset(self.completed)), key=rank.__getitem__)
        room = self._room()
        for step_id in ready:
            attempt = self._attempt_due(step_id)
            if attempt is None:
                continue
            if room is not None:
                if room <= 0:
                    break  # a team of N agents works on at most N attempts at once
                room -= 1
            actions.append(self._step_request(step_id, attempt))
        return actions

    def _attempt_due(self, step_id: str) -> int | None:
        """The attempt to request now, or None if one is already out."""
        if step_id in self.completed:
            return None
        newest = self.requested.get(step_id)
        if newest is None:
            return 0
        if newest in self.failed_attempts.get(step_id, ()):  # the newest failed: retry it
            return newest + 1
        change = self.reassigned.get(step_id)
        if change is not None and change.after_attempt >= newest:
            return newest + 1  # the supervisor gave up on the newest (stuck or looping)
        return None

    def _failed_for_good(self) -> tuple[str, str] | None:
        for step_id, failures in self.failures.items():
            if step_id in self.completed:
                continue
            last = failures[-1]
            if last.error_class != "transient" and last.reason not in RESAMPLE_REASONS:
                return step_id, f"step {step_id} failed ({last.error_class}): {last.error}"
            if len(failures) >= self.config.max_step_attempts + self.extra_attempts.get(step_id, 0):
                return step_id, (f"step {step_id} failed {len(failures)} times; last: {last.error}")
        return None

    def _answer(self) -> tuple[str, str]:
        """The team's answer: the last coder steps' outputs (code is the deliverable);
        with no coder step, the outputs of the steps nothing depends on."""
        last = self._answer_steps()
        return "\n\n".join(self.completed[s].output for s in last), ",".join(last)

    def _answer_steps(self) -> list[str]:
        dag = self._dag
        assert dag is not None
        coders = [s for s in dag.ids if dag.step(s).role == "coder"]
        if coders:
            return [s for s in coders if not any(d in coders for d in dag.dependents(s))]
        return [s for s in dag.ids if not dag.dependents(s)]

    def _request_vote(self, round_: int) -> Action:
        assert self.submitted is not None
        task = self.submitted.body
        content, authors = self._answer()
        suffix = "" if round_ == 1 else f"-{round_}"
        body = VoteRequested(
            proposal_id=f"{self.task_id}/{ANSWER}{suffix}",
            ballot=1,
            subject="answer",
            candidates=[Candidate(candidate_id=ANSWER, content=content, author=authors)],
            electorate=electorate(task.reviewers, self.quarantined),
            policy=task.policy,
            partition_mode=task.partition_mode,
            deadline_s=self.config.vote_deadline_s,
            verify=self._verification(),
        )
        return self._publish(body, f"vote/{round_}")

    def _verification(self) -> Verification | None:
        """The task's tests, on the workspace of the attempts the answer comes from."""
        assert self.submitted is not None
        tests = self.submitted.body.tests
        if not tests:
            return None
        # Write ids derive from the request that wrote them: naming the winning
        # request of each step (merge steps included) pins the workspace version.
        return Verification(tests=tests, winners=dict(sorted(self.workspace_winners().items())))

    def _tests_verdict(self) -> tuple[bool | None, str]:
        """The jurors' runs of the tests on the decided answer."""
        if self.decision is None:
            return None, ""
        return verdict_of_runs(self.test_runs.get(self.decision.proposal_id, {}).values())

    def _conclude(self) -> Action:
        assert self.decision is not None
        passed, summary = self._tests_verdict()
        if self.decision.outcome == ANSWER:
            content, _ = self._answer()
            body: Body = TaskCompleted(
                result=content,
                plan_id=self.plan.plan_id if self.plan else "",
                decision_id=self.decision.decision_id,
                steps_completed=len(self.completed),
                usage=self.usage(),
                duration_s=0.0,
                tests_passed=passed,
                tests_summary=summary,
            )
            return self._publish(body, "outcome")
        tests = f"; tests: {summary}" if summary else ""
        return self._fail(
            f"the reviewers did not accept the answer: {self.decision.outcome} "
            f"(tally {dict(self.decision.tally)}, quorum {self.decision.quorum}){tests}",
            "permanent",
        )

    def _fail(self, reason: str, error_class: Any, step_id: str | None = None) -> Action:
        # A task that fails after a decision failed on that answer: its test runs
        # say why; before any decision there is no answer to have tested.
        passed, summary = self._tests_verdict()
        body = TaskFailed(
            reason=reason[:10_000],
            error_class=error_class,
            failed_step=step_id,
            usage=self.usage(),
            tests_passed=passed,
            tests_summary=summary,
        )
        return self._publish(body, "outcome")

    def _publish(self, body: Body, what: str, attempt: int = 0) -> Publish:
        causes = (self.submitted.message_id,) if self.submitted is not None else ()
        message_id = derived_id(self.task_id, what)
        if isinstance(body, StepRequested):
            body = self._with_workspace(body, message_id)
            if self.submitted is not None:  # the task's model routing, for the worker
                labels = routing_labels(self.submitted.body.labels)
                body = body.model_copy(update={"labels": labels}) if labels else body
        return Publish(body, message_id, attempt, causes)

    def usage(self) -> Usage:
        steps = list(self.completed.values()) + [f for fs in self.failures.values() for f in fs]
        return Usage(
            model=steps[0].usage.model if steps else "",
            calls=sum(s.usage.calls for s in steps),
            input_tokens=sum(s.usage.input_tokens for s in steps),
            output_tokens=sum(s.usage.output_tokens for s in steps),
            cost_usd=round(sum(s.usage.cost_usd for s in steps), 6),
            unpriced_calls=sum(s.usage.unpriced_calls for s in steps),
        )

    def plan_from(self, steps: list[PlanStep], rationale: str) -> Publish:
        """The action that records a plan the model proposed."""
        return self._publish(
            PlanProposed(plan_id="p1", steps=steps, rationale=rationale[:10_000]),
            "plan",
        )

    def plan_failed(self, reason: str, error_class: Any) -> Publish:
        return self._fail(f"planning failed: {reason}", error_class)  # type: ignore[return-value]

    # ------------------------------------------------------------ workspace
    #
    # The planner is the one authority on its task's workspace. Each request of
    # a step that writes files says, per file, the version it builds on: the
    # join of the versions its completed ancestors wrote (computed from this
    # log: see `synod.core.workspace.writes`), so a rewrite by a later step is an
    # update, never a false conflict. In `strong` consistency it also carries
    # a lease token per file, newer than every earlier grant of the file, so a
    # stale writer of an older grant is fenced off when the workspace is
    # folded; a hedged copy shares its original's lease (the first result
    # wins; the fold keeps the winner's write). In `eventual` consistency the
    # planner checks the workspace before the answer is voted on, and merges
    # each file in conflict with a merge step (a coder gets every sibling and
    # writes a version based on all of them) before it asks for the vote.

    def _fold_workspace(self, envelope: Envelope[Any]) -> bool:
        """Fold the workspace side of a message; True if it is a merge step's (no DAG step)."""
        body = envelope.body
        if isinstance(body, StepRequested):
            key = (body.step_id, envelope.attempt)
            if body.base_versions:
                self.ws_bases[key] = {p: dict(v) for p, v in body.base_versions.items()}
            if body.lease_tokens:
                self.ws_tokens[key] = dict(body.lease_tokens)
                for path, token in body.lease_tokens.items():
                    self.ws_newest_token[path] = max(token, self.ws_newest_token.get(path, 0))
            self._ws_handed.pop(envelope.message_id, None)
        if not isinstance(body, StepRequested | StepCompleted | StepFailed):
            return False
        if not body.step_id.startswith(MERGE_PREFIX):
            return False
        step_id, attempt = body.step_id, envelope.attempt
        if isinstance(body, StepRequested):
            self.merge_requested[step_id] = max(attempt, self.merge_requested.get(step_id, -1))
        else:
            self.merge_finished[step_id] = max(attempt, self.merge_finished.get(step_id, -1))
            if isinstance(body, StepCompleted):
                self.merges_completed[step_id] = body
        return True

    def _merging(self) -> bool:
        return any(n > self.merge_finished.get(s, -1) for s, n in self.merge_requested.items())

    def _with_workspace(self, body: StepRequested, message_id: str) -> StepRequested:
        if not body.files or body.step_id.startswith(MERGE_PREFIX) or self._dag is None:
            return body
        bases = {path: self._base_for(body.step_id, path) for path in body.files}
        update: dict[str, Any] = {"base_versions": bases}
        if self.submitted is not None and self.submitted.body.consistency == "strong":
            update["lease_tokens"] = self._lease_tokens(body, message_id)
        return body.model_copy(update=update)

    def _base_for(self, step_id: str, path: str) -> dict[str, int]:
        """The join of the versions of `path` this step's completed ancestors wrote."""
        assert self._dag is not None
        base = VersionVector()
        for ancestor in self._ancestors(step_id):
            if ancestor not in self.completed or path not in self._dag.step(ancestor).files:
                continue
            attempt = self.completed_attempt[ancestor]
            given = self.ws_bases.get((ancestor, attempt), {}).get(path, {})
            request = derived_id(self.task_id, f"step/{ancestor}/{attempt}")
            base = base.join(written_version(given, request, path))
        return base.as_dict()

    def _ancestors(self, step_id: str) -> set[str]:
        assert self._dag is not None
        seen: set[str] = set()
        todo = list(self._dag.depends_on(step_id))
        while todo:
            step = todo.pop()
            if step not in seen:
                seen.add(step)
                todo.extend(self._dag.depends_on(step))
        return seen

    def _lease_tokens(self, body: StepRequested, message_id: str) -> dict[str, int]:
        """The request's lease per file: the original's for a hedge, else new grants."""
        handed = self._ws_handed.get(message_id)
        if handed is not None:
            return handed  # the same action derived again before it folded back
        original = self.requested.get(body.step_id)
        shared = self.ws_tokens.get((body.step_id, original)) if original is not None else None
        if body.prompt_variant == "hedge" and shared is not None:
            tokens = dict(shared)
        else:
            out = [t for pending in self._ws_handed.values() for t in pending.items()]
            tokens = {}
            for path in body.files:
                newest = max([self.ws_newest_token.get(path, 0)] + [t for p, t in out if p == path])
                tokens[path] = newest + 1
        self._ws_handed[message_id] = tokens
        return tokens

    def checks_workspace(self, action: Action) -> bool:
        """Whether `action` waits for the workspace check: the answer's first vote
        request of an `eventual` task whose steps write files."""
        if not isinstance(action, Publish) or not isinstance(action.body, VoteRequested):
            return False
        if self.submitted is None or self.submitted.body.consistency != "eventual":
            return False
        return self._dag is not None and any(self._dag.step(s).files for s in self._dag.ids)

    def workspace_winners(self) -> dict[str, str]:
        """Step -> the request id of its winning attempt, as the workspace fold takes it."""
        winners = {
            s: derived_id(self.task_id, f"step/{s}/{a}") for s, a in self.completed_attempt.items()
        }
        for step_id in self.merges_completed:
            n = self.merge_finished[step_id]
            winners[step_id] = derived_id(self.task_id, f"merge/{step_id[len(MERGE_PREFIX) :]}/{n}")
        return winners

    def merge_requests(self, conflicted: Mapping[str, tuple[Sibling, ...]]) -> list[Action]:
        """A merge step per file in conflict; the task fails, naming the file and its
        siblings, once a file's merges ran out (never a silent pick)."""
        actions: list[Action] = []
        for path, siblings in sorted(conflicted.items()):
            step_id = f"{MERGE_PREFIX}{path}"
            attempt = self.merge_requested.get(step_id, -1) + 1
            if attempt >= MAX_MERGE_ROUNDS:
                writes = ", ".join(f"{s.write_id} (step {s.step_id})" for s in siblings)
                why = f"{path} still has concurrent versions after {attempt} merges: {writes}"
                return [self._fail(why, "permanent", step_id)]
            base = VersionVector()
            for sibling in siblings:
                base = base.join(sibling.version)
            body = StepRequested(
                step_id=step_id,
                plan_id=self.plan.plan_id if self.plan else "",
                role="coder",
                title=f"Merge the concurrent versions of {path}",
                instructions=(
                    f"{path} was written concurrently: {len(siblings)} versions, none of "
                    "which saw the others. Write one version of the file that keeps what "
                    "each of them contributes."
                ),
                inputs={f"{s.step_id} ({s.write_id})": s.content for s in siblings},
                deadline_s=self.config.step_deadline_s,
                files=[path],
                base_versions={path: base.as_dict()},
            )
            actions.append(self._publish(body, f"merge/{path}/{attempt}", attempt))
        return actions
