"""One task's life as one state machine: events in (`step`), actions out (`ready`).

The planner keeps no state of its own. A task's state is the fold of its
messages on `synod.task-events`, plus the few inputs that are not in the log
(time, the quarantine, the answers to the machine's own requests). What the
planner must do next is a function of that state: `ready()` says all of it,
in order, records with their Kafka keys included; the adapter carries it out
and hands it back (`advance`), as etcd-io/raft's Ready/Advance works. A
restarted planner folds the log again and carries on: every record has an id
derived from what it is, so a repeated action is a duplicate consumers drop.

    NEW -> PLANNING -> RUNNING (steps requested / completed, retried, hedged)
        -> (MERGING ->) VOTING (answer put to the vote, revised if rejected) -> DONE

The decisions by phase live in their own modules: `dispatch` and `slots`
(which steps to request), `hedging` (stragglers and cancels), `workspace`
(bases, leases, merges), `answer` (votes and the outcome), `retries`
(parked retries and reassignments); `fold` is the log fold.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from synod.core.blackboard import RECONCILE_STEP
from synod.core.task import answer, budget, dispatch, escalation, hedging, knowledge, workspace
from synod.core.task.actions import (
    Action,
    CheckWorkspace,
    Event,
    Forward,
    GrantLease,
    Logged,
    Owners,
    PlanMade,
    PlanningFailed,
    Publish,
    Quarantined,
    Ready,
    RequestPlan,
    Tick,
    WorkspaceChecked,
    action_id,
    forward_to,
    key_of,
)
from synod.core.task.fold import fold
from synod.core.task.phase import Phase
from synod.core.task.records import fail, publish, usage
from synod.core.task.state import TaskState
from synod.core.task.steps import failed_for_good, room
from synod.ids import derived_id
from synod.wire import Envelope, PlanProposed, StepRequested, Usage, VoteRequested
from synod.wire.messages import LeaseGranted


def forwards_of(envelope: Envelope[Any]) -> list[GrantLease | Forward]:
    """What a logged record of the planner's entails, in order: a step request's
    lease grants, then the record on to its topic; nothing for other records."""
    destination = forward_to(envelope)
    if destination is None:
        return []
    out: list[GrantLease | Forward] = []
    body = envelope.body
    if isinstance(body, StepRequested):
        # Every fold of the workspace must see a grant before any write under
        # it (and a newer grant fences the writers of older ones).
        for path, token in sorted(body.lease_tokens.items()):
            grant = LeaseGranted(
                path=path,
                step_id=body.step_id,
                token=token,
                base_version=body.base_versions.get(path, {}),
            )
            out.append(
                GrantLease(
                    grant,
                    derived_id(envelope.message_id, f"lease/{path}"),
                    envelope.attempt,
                    (envelope.message_id,),
                    envelope.trace,
                )
            )
    out.append(Forward(envelope, destination, key_of(envelope)))
    return out


class TaskMachine(TaskState):
    """`step(event)` for every input, then `ready()`; `advance(ready)` once carried out."""

    # ------------------------------------------------------------ in

    def step(self, event: Event) -> bool:
        """Take one input; False if it changed nothing (a record folded before)."""
        if isinstance(event, Logged):
            changed = fold(self, event.envelope)
            if not event.replayed:
                self._forward(event.envelope)
            return changed
        if isinstance(event, Tick):
            self.now = event.now if self.now is None else max(self.now, event.now)
        elif isinstance(event, Quarantined):
            self.quarantined = frozenset(event.reviewers)
        elif isinstance(event, Owners):
            self.owners = event.maps
        elif isinstance(event, PlanMade):
            rationale = event.rationale[:10_000]
            proposed = PlanProposed(plan_id="p1", steps=event.steps, rationale=rationale)
            self.made_plan = publish(self, proposed, "plan")
        elif isinstance(event, PlanningFailed):
            self.made_plan = fail(self, f"planning failed: {event.reason}", event.error_class)
        elif isinstance(event, WorkspaceChecked):
            self.ws_check = (tuple(sorted(event.winners.items())), dict(event.conflicted))
        return True

    def _forward(self, envelope: Envelope[Any]) -> None:
        """The log is the outbox: a record the planner logged goes on to its topic
        only once it is in the log (each time it is delivered), so a crash in
        between redoes the forward instead of losing it. (A planner that writes
        the record and its forwards in one transaction folds its own records as
        replayed: it forwarded them already; ADR 0012.)"""
        for action in forwards_of(envelope):
            self._queue(action)

    def _queue(self, action: Action) -> None:
        if all(action_id(a) != action_id(action) for a in self.outbox):
            self.outbox.append(action)

    # ------------------------------------------------------------ out

    def ready(self) -> Ready:
        """Everything to do now, in order; the same again until `advance`d."""
        out: list[Action] = []
        seen: set[str] = set()
        for action in [*self._decide(), *self.outbox]:
            aid = action_id(action)
            if aid in seen or aid in self.done:
                continue
            if isinstance(action, Publish) and action.message_id in self.seen:
                continue  # already in the log
            seen.add(aid)
            out.append(action)
        return Ready(tuple(out), self._wake_at())

    def advance(self, ready: Ready) -> None:
        """`ready`'s actions were carried out: say them no more."""
        for action in ready.actions:
            if isinstance(action, Forward | GrantLease):
                self.outbox = [a for a in self.outbox if action_id(a) != action_id(action)]
            else:
                self.done.add(action_id(action))

    def _decide(self) -> list[Action]:
        if self.phase in (Phase.NEW, Phase.DONE):
            return []
        cancels: list[Action] = list(hedging.cancels(self))
        person = escalation.decide(self)  # a cancel, a parked wait, an approval
        if person is not None:
            return [*cancels, *person]
        late = self._overdue()
        if late is not None:
            return [*cancels, late]
        actions, held = budget.allot(self, self._next())
        standing = budget.standing(self)
        if standing == "exhausted" or held:
            return [*cancels, self._exhausted()]
        if standing == "hold":
            # What is still out may leave room: request nothing new until it ends.
            actions = [a for a in actions if not budget.is_request(a)]
        return [*cancels, *actions]

    def _exhausted(self) -> Publish:
        """The budget cannot cover the next call: fail, or ask a person (`escalate`)."""
        b = budget.limit(self)
        assert b is not None
        spent = budget.spent(self)
        room = budget.free(self)
        left = (
            f"; {room.tokens} tokens free" if room is not None and room.tokens is not None else ""
        )
        why = (
            f"the budget is spent (max_tokens {b.max_tokens}, max_cost_usd {b.max_cost_usd}, "
            f"max_model_calls {b.max_model_calls}; used {budget.tokens(spent)} tokens, "
            f"{spent.cost_usd:g} USD, {spent.calls} calls{left}, the rest granted to "
            "calls still out or too little for the next call)"
        )
        if b.on_exhausted == "escalate":
            return escalation.raise_for(self, "budget", why)
        return fail(self, why, "budget")

    def _next(self) -> list[Action]:
        cancels: list[Action] = []
        if self.phase is Phase.PLANNING:
            return [*cancels, self._plan()]
        blocked = self._blocked()
        if blocked is not None:
            return [*cancels, blocked]
        if self.phase is Phase.RUNNING:
            steps = dispatch.dispatch(self)
            left = room(self)
            if left is not None:
                left -= sum(1 for a in steps if isinstance(a.body, StepRequested))
            return [*cancels, *steps, *hedging.hedges(self, left)]
        if self.phase is Phase.MERGING:
            return cancels  # the answer is voted on once the workspace's conflicts are merged
        return [*cancels, *self._vote()]

    def _plan(self) -> Action:
        assert self.submitted is not None
        task = self.submitted.body
        if task.plan:
            given = PlanProposed(plan_id="p1", steps=task.plan, rationale="given with the task")
            return publish(self, given, "plan")
        if self.made_plan is not None:
            return self.made_plan
        return RequestPlan(attempt=0)

    def _blocked(self) -> Publish | None:
        """The task's failure when its plan, its labels or a step cannot go on."""
        if self.plan_error is not None:
            return fail(self, f"the plan is invalid: {self.plan_error}", "permanent")
        team_error = self.team_error()
        if team_error is not None:
            return fail(self, team_error, "permanent")
        failed = failed_for_good(self)
        if failed is not None:
            step_id, why = failed
            return fail(self, why, self.failures[step_id][-1].error_class, step_id)
        return None

    def _vote(self) -> list[Action]:
        """The answer's next step; a vote of an `eventual` task waits for the
        workspace check, and becomes merge steps while files are in conflict,
        and for the reconcile step while its blackboard needs one."""
        if knowledge.needs_reconcile(self):
            return self._reconcile()
        out: list[Action] = []
        for action in answer.decide(self):
            if isinstance(action.body, VoteRequested) and workspace.needs_check(self):
                winners = workspace.winners(self)
                if self.ws_check is None or self.ws_check[0] != tuple(winners.items()):
                    out.append(CheckWorkspace(winners))
                    continue
                conflicted = self.ws_check[1]
                if conflicted:
                    out.extend(workspace.merge_requests(self, conflicted))
                    continue
            out.append(action)
        return out

    def _reconcile(self) -> list[Action]:
        """The reconcile step's next attempt, nothing while one is out, the task's
        failure once its attempts ran out (an eventual answer is never voted on
        with its conflicts unreconciled)."""
        if self.reconcile_requested > self.reconcile_finished:
            return []
        attempt = self.reconcile_requested + 1
        if attempt >= self.config.max_step_attempts:
            last = self.reconcile_failures[-1].error if self.reconcile_failures else ""
            why = f"{RECONCILE_STEP} failed {attempt} times; last: {last}"
            return [fail(self, why, "permanent", RECONCILE_STEP)]
        body = knowledge.reconcile_body(self)
        return [publish(self, body, f"reconcile/{attempt}", attempt)]

    def _deadline(self) -> datetime | None:
        if self.submitted is None:
            return None
        # Time parked waiting for a person does not count against the deadline.
        budget_s = self.submitted.body.deadline_s + self.parked_s
        return self.submitted.created_at + timedelta(seconds=budget_s)

    def _overdue(self) -> Publish | None:
        """TaskFailed once the task's own deadline has passed, else None.

        The backstop that makes every task end: whatever was lost or stuck (a
        step no worker will ever answer, a ballot that never closes), the task
        fails with a reason that says what it was waiting for.
        """
        deadline = self._deadline()
        if self.now is None or deadline is None or self.now < deadline:
            return None
        assert self.submitted is not None
        budget = self.submitted.body.deadline_s
        return fail(
            self,
            f"the task's deadline of {budget:g} s passed while waiting for {self._waiting_for()}",
            "budget",
        )

    def _waiting_for(self) -> str:
        if self.plan is None:
            return "a plan"
        if self.dag is not None and len(self.completed) < len(self.dag.ids):
            pending = [s for s in self.dag.ids if s not in self.completed]
            return "steps " + ", ".join(pending)
        return "the reviewers' decision"

    def _wake_at(self) -> datetime | None:
        if self.phase in (Phase.NEW, Phase.DONE):
            return None
        if escalation.open_escalation(self) is not None:
            return escalation.wake_at(self)  # parked: only the escalation's timeout
        times = [t for t in (self._deadline(), hedging.next_hedge_at(self)) if t is not None]
        return min(times, default=None)

    # ------------------------------------------------------------ queries

    def next_wake(self) -> datetime | None:
        """When the machine next decides on time alone, with no new input: the task's
        deadline, its next hedge, or its escalation's timeout, whichever is first (in
        the past if it is overdue already); None while nothing can come of the time
        (not started, finished). The planner steps the task with a `Tick` then, and
        at no other time unless something else comes in (synod.core.task.wakes).
        The same as `ready().wake_at`, without deciding the actions."""
        return self._wake_at()

    def usage(self) -> Usage:
        return usage(self)

    def workspace_winners(self) -> dict[str, str]:
        """Step -> the request id of its winning attempt, as the workspace fold takes it."""
        return workspace.winners(self)
