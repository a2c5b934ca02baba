"""The run's measurements, folded from the task's log (sans-I/O).

A `RunLog` takes the task's envelopes in log order and keeps what the report
needs: when each step was first requested, the winning attempt's start and
duration, message counts by type, tokens, and the outcome. Step start is the
completion's creation time minus its measured duration, because the worker
measures the attempt itself and the request may wait in the pool's queue.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from synod.core.plan.dag import Plan
from synod.core.plan.report import RunReport, build_report
from synod.core.plan.teampolicy import central_waits
from synod.wire import Envelope, StepCompleted, StepRequested, TaskCompleted, TaskFailed
from synod.wire.messages import StepCancelled, StepClaimed


@dataclass
class RunLog:
    task_id: str
    first_request: datetime | None = None
    requests: Counter[str] = field(default_factory=Counter)  # step -> attempts requested
    completions: Counter[str] = field(default_factory=Counter)  # step -> completions seen
    winners: dict[str, StepCompleted] = field(default_factory=dict)
    winner_request: dict[str, str] = field(default_factory=dict)  # step -> winning request id
    finished_at: dict[str, datetime] = field(default_factory=dict)
    by_kind: Counter[str] = field(default_factory=Counter)
    tokens: int = 0
    hedges: int = 0  # StepRequested with prompt_variant "hedge"
    cancelled: dict[str, list[str]] = field(default_factory=dict)  # step -> request ids stopped
    claims: dict[str, StepClaimed] = field(default_factory=dict)  # claim teams: step -> claim
    outcome: TaskCompleted | TaskFailed | None = None
    _seen: set[str] = field(default_factory=set)

    def apply(self, envelope: Envelope[Any]) -> None:
        if envelope.task_id != self.task_id or envelope.message_id in self._seen:
            return  # other tasks share the partition; redeliveries are not new messages
        self._seen.add(envelope.message_id)
        self.by_kind[envelope.type] += 1
        body = envelope.body
        if isinstance(body, StepRequested):
            self.requests[body.step_id] += 1
            if body.prompt_variant == "hedge":
                self.hedges += 1
            if self.first_request is None:
                self.first_request = envelope.created_at
        elif isinstance(body, StepCompleted):
            self.completions[body.step_id] += 1
            self.tokens += body.usage.input_tokens + body.usage.output_tokens
            if body.step_id not in self.winners:  # the first result wins
                self.winners[body.step_id] = body
                # The request it answers names the attempt (a worker's outcome has
                # the request as its cause), even when one instance ran both copies.
                self.winner_request[body.step_id] = envelope.causes[0] if envelope.causes else ""
                self.finished_at[body.step_id] = envelope.created_at
        elif isinstance(body, StepClaimed):
            self.claims.setdefault(body.step_id, body)
        elif isinstance(body, StepCancelled):
            self.cancelled.setdefault(body.step_id, list(body.request_ids))
        elif isinstance(body, TaskCompleted | TaskFailed):
            self.outcome = self.outcome or body

    @property
    def blocked_claims(self) -> int:
        """Claims of a step whose dependencies were unfinished (the slot waited)."""
        return sum(1 for c in self.claims.values() if c.blocked_on)

    @property
    def cancels(self) -> int:
        """Attempts the planner cancelled (hedge losers)."""
        return sum(len(ids) for ids in self.cancelled.values())

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def tests_passed(self) -> bool | None:
        """The reviewers' verdict on the project's tests, as the outcome carries it."""
        return self.outcome.tests_passed if self.outcome is not None else None

    @property
    def tests_summary(self) -> str:
        return self.outcome.tests_summary if self.outcome is not None else ""

    def report(
        self,
        plan: Plan,
        *,
        mode: str,
        n: int,
        seed: int = 0,
        concurrent_writes: int = 0,
        lost_writes: int = 0,
        tests_passed: bool | None = None,
    ) -> RunReport:
        missing = [s for s in plan.ids if s not in self.winners]
        if missing or self.first_request is None:
            raise ValueError(f"no result in the log for steps {', '.join(missing) or '(all)'}")
        origin = self.first_request
        # The plan's steps: a workspace merge step (`merge:<path>`) is not one, but
        # its finish still counts in the makespan.
        durations = {s: max(c.duration_s, 1e-6) for s, c in self.winners.items() if s in plan.ids}
        starts = {
            s: (self.finished_at[s] - timedelta(seconds=durations[s]) - origin).total_seconds()
            for s in plan.ids
        }
        # Compute makespan: first step requested to last step finished (the vote
        # that follows is the same for every mode and every team size).
        makespan = max((t - origin).total_seconds() for t in self.finished_at.values())
        # Central slots idle on their own unready next step; replayed from the
        # log's order of first completions, which is what the planner acted on.
        waits = central_waits(plan, n, list(self.winners)) if mode == "central" else 0
        # One agent running the same steps back to back: the sum of their
        # measured durations (nothing was run on one agent to measure it).
        one_agent = plan.total_work(durations)
        return build_report(
            plan,
            mode=mode,
            n=n,
            seed=seed,
            makespan_s=max(makespan, 1e-6),
            one_agent_makespan_s=one_agent,
            durations=durations,
            step_times=durations,
            step_starts=starts,
            messages_by_kind=dict(self.by_kind),
            tokens=self.tokens,
            concurrent_writes=concurrent_writes,
            lost_writes=lost_writes,
            hedges=self.hedges,
            cancels=self.cancels,
            blocked_claims=self.blocked_claims,
            waits=waits,
            tests_passed=tests_passed,
        )
