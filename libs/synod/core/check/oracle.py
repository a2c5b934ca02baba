"""Check a log against Synod's promises; every violation names the record it is about.

What is checked (per task; `KINDS` lists the names used in reports):

- terminal once: one TaskCompleted or TaskFailed per task (by message id, so
  the copy on synod.results is the same event), never both; a provisional
  TaskCompleted that a Reconciled later overturned does not count (the task
  reopened: docs/cap.md), and only a provisional decision can be reconciled;
- quorum: every non-provisional Decision with a real outcome has at least
  `quorum` distinct electorate votes agreeing with it, for its proposal and
  ballot, on the log (equivocators excluded);
- decided one way: a proposal's non-provisional decisions agree;
- causes: every cause an envelope names is on the log, and happened before
  it: the effect's vector clock strictly dominates the cause's, and its
  Lamport and HLC timestamps are larger (where both are stamped);
- per-task order: a task's records on synod.task-events are in one partition,
  and a cause logged there comes before its effect;
- no lost write: every file a completed coding step was asked to write is on
  synod.workspace (its write id, derived from the request, is there);
- facts read were written: every blackboard fact a step request names is a
  FactPublished logged before the request; in a `strong` task it is also
  decided then (its attempt's StepCompleted is logged before the request);
- escalations answered once and resumed once, as the answer said (`answers`);
- usage within the budget, and the outcome's usage what the log recorded (`budgets`).

Copies of one message (a task logged from synod.tasks, a request forwarded to
a work topic) share a message id; the stamped copy with the smallest Lamport
time stands for the message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from synod.core.check import answers, budgets
from synod.core.ordering import Order, compare
from synod.core.workspace import write_id_for
from synod.wire.messages import (
    Decision,
    Envelope,
    FactPublished,
    FileWritten,
    Reconciled,
    StepCompleted,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    Vote,
    VoteRequested,
)

LOG_TOPIC = "synod.task-events"
WORKSPACE_TOPIC = "synod.workspace"
NO_QUORUM = "no_quorum"
REJECTED = "rejected"

KINDS = {
    "terminal_twice": "a task finished more than once",
    "completed_and_failed": "a task both completed and failed",
    "decision_without_quorum": "a decision not backed by a quorum of votes on the log",
    "decided_two_ways": "a proposal decided with two different outcomes",
    "missing_cause": "a cause named by a message is not on the log",
    "cause_not_before": "a cause's clocks do not happen-before its effect's",
    "task_split": "a task's log spans more than one partition",
    "effect_before_cause": "an effect is logged before its cause",
    "lost_write": "a completed step's file write is not on the workspace topic",
    "unwritten_fact_read": "a step was handed a fact not on the task's log before it",
    "undecided_fact_read": "a strong task's step was handed a fact not yet decided",
    **answers.KINDS,
    **budgets.KINDS,
    "reconciled_not_provisional": "a Reconciled names no provisional decision on the log",
    "overturned_before_decision": "an outcome counted as overturned is not provisional",
}


@dataclass(frozen=True)
class LogRecord:
    """One record as read: where it is (catalogue topic name, no prefix) and what it holds."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope[Any]

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Violation:
    kind: str
    task_id: str
    message_id: str
    where: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "task_id": self.task_id,
            "message_id": self.message_id,
            "where": self.where,
            "detail": self.detail,
        }


@dataclass
class Report:
    records: int = 0
    tasks: int = 0
    terminal: int = 0
    decisions: int = 0
    causes: int = 0
    writes: int = 0
    facts_read: int = 0
    answers: int = 0
    budgets: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for v in self.violations:
            out[v.kind] += 1
        return dict(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "tasks": self.tasks,
            "checked": {
                "terminal_tasks": self.terminal,
                "decisions": self.decisions,
                "cause_links": self.causes,
                "acknowledged_writes": self.writes,
                "facts_read": self.facts_read,
                "escalation_answers": self.answers,
                "budgets": self.budgets,
            },
            "violations": [v.to_json() for v in self.violations],
            "violation_counts": self.counts(),
        }

    def text(self) -> str:
        lines = [
            f"{self.records} records, {self.tasks} tasks: {self.terminal} finished, "
            f"{self.decisions} decisions, {self.causes} cause links, "
            f"{self.writes} acknowledged writes checked",
        ]
        if self.ok:
            lines.append("ok: no violation")
        else:
            lines.append(f"{len(self.violations)} violation(s):")
            for v in self.violations:
                lines.append(f"  {v.kind} task {v.task_id} message {v.message_id} at {v.where}")
                lines.append(f"      {v.detail}")
        return "\n".join(lines)


def check(
    records: Iterable[LogRecord], *, task_id: str | None = None, since: datetime | None = None
) -> Report:
    """Check the log; `task_id`/`since` choose which tasks, the whole log is the evidence."""
    by_task: dict[str, list[LogRecord]] = defaultdict(list)
    report = Report()
    for record in records:
        report.records += 1
        if record.envelope.task_id is not None:
            by_task[record.envelope.task_id].append(record)
    for tid, task_records in by_task.items():
        if task_id is not None and tid != task_id:
            continue
        if since is not None and not any(r.envelope.created_at >= since for r in task_records):
            continue
        report.tasks += 1
        _TaskCheck(tid, task_records, report).run()
    return report


class _TaskCheck:
    def __init__(self, task_id: str, records: list[LogRecord], report: Report) -> None:
        self.task_id = task_id
        self.records = records
        self.report = report
        self.message: dict[str, LogRecord] = {}  # id -> the record standing for it
        self.stamped: dict[str, list[LogRecord]] = {}  # id -> its stamped copies
        for r in records:
            known = self.message.get(r.envelope.message_id)
            if known is None or _earlier_stamp(r, known):
                self.message[r.envelope.message_id] = r
            if r.envelope.lamport > 0:
                self.stamped.setdefault(r.envelope.message_id, []).append(r)
        self.logged: dict[str, LogRecord] = {}  # id -> its first copy on the task's log
        for r in records:
            if r.topic == LOG_TOPIC:
                self.logged.setdefault(r.envelope.message_id, r)

    def flag(self, kind: str, record: LogRecord, detail: str) -> None:
        self.report.violations.append(
            Violation(kind, self.task_id, record.envelope.message_id, record.where, detail)
        )

    def run(self) -> None:
        self.terminal()
        self.decisions()
        self.causes()
        self.order()
        self.writes()
        self.facts()
        in_order = sorted(self.logged.values(), key=lambda r: r.offset)
        self.report.answers += answers.check(in_order, self.flag)
        self.report.budgets += budgets.check(in_order, self.flag)

    # ------------------------------------------------------------ invariants

    def overturned(self) -> set[str]:
        """Decision ids a Reconciled overturned; checks each names a provisional decision."""
        provisional = {
            r.envelope.body.decision_id
            for r in self.message.values()
            if isinstance(r.envelope.body, Decision) and r.envelope.body.provisional
        }
        out: set[str] = set()
        for r in self.message.values():
            body = r.envelope.body
            if not isinstance(body, Reconciled):
                continue
            if body.decision_id not in provisional:
                self.flag(
                    "reconciled_not_provisional",
                    r,
                    f"reconciles {body.decision_id}, which is no provisional decision on the log",
                )
            elif not body.confirmed:
                out.add(body.decision_id)
        return out

    def terminal(self) -> None:
        overturned = self.overturned()
        ends = []
        for r in self.message.values():
            body = r.envelope.body
            if not isinstance(body, TaskCompleted | TaskFailed):
                continue
            if body.decision_id and body.decision_id in overturned:
                if not body.provisional:
                    self.flag(
                        "overturned_before_decision",
                        r,
                        f"rests on overturned {body.decision_id} but does not say provisional",
                    )
                continue  # reopened by the reconcile rule: a later outcome may follow
            ends.append(r)
        ends.sort(key=lambda r: (r.envelope.lamport, r.offset))
        if ends:
            self.report.terminal += 1
        completed = [r for r in ends if isinstance(r.envelope.body, TaskCompleted)]
        failed = [r for r in ends if isinstance(r.envelope.body, TaskFailed)]
        if completed and failed:
            self.flag(
                "completed_and_failed",
                failed[0] if ends.index(completed[0]) < ends.index(failed[0]) else completed[0],
                f"completed as {completed[0].envelope.message_id} at {completed[0].where} "
                f"and failed as {failed[0].envelope.message_id} at {failed[0].where}",
            )
        for kind_ends, what in ((completed, "completed"), (failed, "failed")):
            for extra in kind_ends[1:]:
                first = kind_ends[0]
                self.flag(
                    "terminal_twice",
                    extra,
                    f"{what} again; first {what} as {first.envelope.message_id} at {first.where}",
                )

    def decisions(self) -> None:
        electorate: dict[str, set[str]] = defaultdict(set)
        votes: dict[tuple[str, int], dict[str, Vote]] = defaultdict(dict)
        for r in self.message.values():
            body = r.envelope.body
            if isinstance(body, VoteRequested):
                electorate[body.proposal_id].update(body.electorate)
            elif isinstance(body, Vote):
                votes[(body.proposal_id, body.ballot)].setdefault(body.voter, body)
        outcomes: dict[str, tuple[str, LogRecord]] = {}
        decided = [r for r in self.message.values() if isinstance(r.envelope.body, Decision)]
        for r in sorted(decided, key=lambda r: (r.envelope.lamport, r.where)):
            d = r.envelope.body
            assert isinstance(d, Decision)
            self.report.decisions += 1
            if d.provisional or d.outcome == NO_QUORUM:
                continue
            members = electorate.get(d.proposal_id, set())
            agreeing = sorted(
                voter
                for voter, v in votes.get((d.proposal_id, d.ballot), {}).items()
                if voter in members and voter not in d.equivocators and _agrees(v, d.outcome)
            )
            if len(agreeing) < d.quorum:
                self.flag(
                    "decision_without_quorum",
                    r,
                    f"proposal {d.proposal_id} ballot {d.ballot} decided {d.outcome!r} with "
                    f"quorum {d.quorum}, but the log holds {len(agreeing)} agreeing electorate "
                    f"vote(s) {agreeing}" + ("" if members else " (no VoteRequested on the log)"),
                )
            first = outcomes.setdefault(d.proposal_id, (d.outcome, r))
            if first[0] != d.outcome:
                self.flag(
                    "decided_two_ways",
                    r,
                    f"proposal {d.proposal_id} decided {d.outcome!r} here and {first[0]!r} "
                    f"at {first[1].where}",
                )

    def causes(self) -> None:
        for effect in self.message.values():
            env = effect.envelope
            for cause_id in env.causes:
                self.report.causes += 1
                cause = self.message.get(cause_id)
                if cause is None:
                    self.flag("missing_cause", effect, f"cause {cause_id} is not on the log")
                    continue
                problems = _not_before(cause.envelope, env)
                if problems and any(
                    not _not_before(c.envelope, env) for c in self.stamped.get(cause_id, ())
                ):
                    # After another copy of it: the one its author was handed. With the
                    # `ack` outbox a planner that had not yet read its predecessor's
                    # record logs its own (same id, its own clocks) and sends that
                    # copy on, so a worker's cause is the second on the task's log
                    # (found by the simulator: `synod sim --seed 795 --tasks 2`).
                    problems = []
                if problems:
                    self.flag(
                        "cause_not_before",
                        effect,
                        f"cause {cause_id} at {cause.where}: " + "; ".join(problems),
                    )

    def order(self) -> None:
        partitions = sorted({r.partition for r in self.logged.values()})
        if len(partitions) > 1:
            stray = next(r for r in self.logged.values() if r.partition != partitions[0])
            self.flag("task_split", stray, f"the task's log is in partitions {partitions}")
            return
        for effect in self.logged.values():
            for cause_id in effect.envelope.causes:
                cause = self.logged.get(cause_id)
                if cause is not None and cause.offset > effect.offset:
                    self.flag(
                        "effect_before_cause",
                        effect,
                        f"its cause {cause_id} is logged later, at {cause.where}",
                    )

    def writes(self) -> None:
        written = {
            r.envelope.body.write_id
            for r in self.records
            if r.topic == WORKSPACE_TOPIC and isinstance(r.envelope.body, FileWritten)
        }
        for done in self.message.values():
            if not isinstance(done.envelope.body, StepCompleted):
                continue
            for cause_id in done.envelope.causes:
                request = self.message.get(cause_id)
                if request is None or not isinstance(request.envelope.body, StepRequested):
                    continue
                if request.envelope.body.role != "coder":
                    continue
                for path in request.envelope.body.files:
                    self.report.writes += 1
                    write_id = write_id_for(cause_id, path)
                    if write_id not in written:
                        self.flag(
                            "lost_write",
                            done,
                            f"step {done.envelope.body.step_id} completed, but its write of "
                            f"{path!r} ({write_id}) is not on {WORKSPACE_TOPIC}",
                        )

    def facts(self) -> None:
        """Every fact a request names was logged before it; decided too, in `strong`."""
        submitted = next(
            (
                r.envelope.body
                for r in self.logged.values()
                if isinstance(r.envelope.body, TaskSubmitted)
            ),
            None,
        )
        strong = submitted is not None and submitted.consistency == "strong"
        # (step, attempt) -> offset of its first StepCompleted on the task's log
        done_at: dict[tuple[str, int], int] = {}
        for r in self.logged.values():
            if isinstance(r.envelope.body, StepCompleted):
                key = (r.envelope.body.step_id, r.envelope.attempt)
                done_at[key] = min(r.offset, done_at.get(key, r.offset))
        for request in self.logged.values():
            body = request.envelope.body
            if not isinstance(body, StepRequested):
                continue
            for fact_id in body.facts:
                self.report.facts_read += 1
                fact = self.logged.get(fact_id)
                if fact is None or not isinstance(fact.envelope.body, FactPublished):
                    where = "not on the log" if fact is None else "not a FactPublished"
                    self.flag("unwritten_fact_read", request, f"fact {fact_id} is {where}")
                    continue
                if fact.offset > request.offset:
                    self.flag(
                        "unwritten_fact_read",
                        request,
                        f"fact {fact_id} is logged later, at {fact.where}",
                    )
                    continue
                step, attempt = fact.envelope.body.step_id, fact.envelope.attempt
                done = done_at.get((step, attempt))
                if strong and (done is None or done > request.offset):
                    self.flag(
                        "undecided_fact_read",
                        request,
                        f"step {body.step_id} was handed fact {fact_id} of step {step} "
                        f"attempt {attempt}, which had not completed",
                    )


def _earlier_stamp(a: LogRecord, b: LogRecord) -> bool:
    """Whether copy `a` should stand for the message instead of `b`.

    A stamped copy beats an unstamped one (a client's task, stamped when the
    planner logs it). Among stamped copies the first on the task's log stands:
    consumers drop later copies by message id, so the first is what every effect
    saw; a copy republished after a restart may carry other clocks. Off the
    task's log the same holds within one partition (the first copy is handled).
    """
    sa, sb = a.envelope.lamport, b.envelope.lamport
    if (sa > 0) != (sb > 0):
        return sa > 0
    on_log_a, on_log_b = a.topic == LOG_TOPIC, b.topic == LOG_TOPIC
    if on_log_a and on_log_b:
        return a.offset < b.offset
    if on_log_a != on_log_b:
        return on_log_a
    if a.topic == b.topic and a.partition == b.partition:
        # Two copies in one partition (an output republished by the next owner after
        # a failover, stamped anew): consumers handle the first and drop the other.
        return a.offset < b.offset
    return sa < sb


def _agrees(vote: Vote, outcome: str) -> bool:
    if outcome == REJECTED:
        return vote.kind == "reject"
    return vote.kind == "choice" and vote.choice == outcome


def _not_before(cause: Envelope[Any], effect: Envelope[Any]) -> list[str]:
    problems: list[str] = []
    if cause.vclock and effect.vclock:
        order = compare(cause.vclock, effect.vclock)
        if order is not Order.BEFORE:
            problems.append(
                f"vector clock {dict(effect.vclock)} is {order.value} the cause's "
                f"{dict(cause.vclock)}, not after it"
            )
    if cause.lamport and effect.lamport and not cause.lamport < effect.lamport:
        problems.append(f"lamport {effect.lamport} is not after the cause's {cause.lamport}")
    if cause.hlc and effect.hlc and not cause.hlc < effect.hlc:
        problems.append(
            f"hlc {effect.hlc} is not after the cause's {cause.hlc}"
            " (a clock beyond the skew bound?)"
        )
    return problems
