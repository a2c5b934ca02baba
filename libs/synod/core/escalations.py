"""The escalations of many tasks, folded from their logs: what the gateway lists and checks.

An escalation is open from its EscalationRaised until its first valid answer
(the planner's fold takes the same one: `synod.core.task.escalation.valid`),
or until its task ends. `problem` says why an answer would not be taken, in
words that say what to send instead.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from synod.core.task.escalation import valid
from synod.wire import TaskCompleted, TaskFailed
from synod.wire.messages import EscalationAnswered, EscalationRaised

State = Literal["open", "answered", "closed"]
MAX_ESCALATIONS = 10_000


@dataclass
class Entry:
    task_id: str
    raised: EscalationRaised
    raised_at: datetime
    answer: EscalationAnswered | None = None
    answered_at: datetime | None = None
    ended: str | None = None  # the task's outcome type, once it has one

    @property
    def state(self) -> State:
        if self.answer is not None:
            return "answered"
        return "closed" if self.ended is not None else "open"

    def to_json(self) -> dict[str, Any]:
        r = self.raised
        doc: dict[str, Any] = {
            "escalation_id": r.escalation_id,
            "task_id": self.task_id,
            "state": self.state,
            "kind": r.kind,
            "reason": r.reason,
            "proposal_id": r.proposal_id,
            "candidates": [c.model_dump(mode="json") for c in r.candidates],
            "raised_at": self.raised_at.isoformat(),
            "timeout_s": r.timeout_s,
            "task_outcome": self.ended,
            "answer": None,
        }
        if self.answer is not None:
            doc["answer"] = self.answer.model_dump(mode="json", exclude_none=True)
        return doc


class EscalationBook:
    """Escalations by id, in the order they were raised (the oldest dropped past the cap)."""

    def __init__(self, capacity: int = MAX_ESCALATIONS) -> None:
        self.capacity = capacity
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self._by_task: dict[str, list[str]] = {}

    def apply(self, envelope: Any) -> bool:
        body, task_id = envelope.body, envelope.task_id or ""
        if isinstance(body, EscalationRaised) and envelope.sender.role == "planner":
            if body.escalation_id in self.entries:
                return False
            self.entries[body.escalation_id] = Entry(task_id, body, envelope.created_at)
            self._by_task.setdefault(task_id, []).append(body.escalation_id)
            while len(self.entries) > self.capacity:
                old, entry = self.entries.popitem(last=False)
                self._by_task.get(entry.task_id, []).remove(old)
            return True
        if isinstance(body, EscalationAnswered):
            known = self.entries.get(body.escalation_id)
            if known is None or known.answer is not None or not valid(known.raised, body):
                return False
            known.answer, known.answered_at = body, envelope.created_at
            return True
        if isinstance(body, TaskCompleted | TaskFailed):
            changed = False
            for eid in self._by_task.get(task_id, []):
                entry = self.entries[eid]
                if entry.ended is None:
                    entry.ended, changed = type(body).__name__, True
            return changed
        return False

    def get(self, escalation_id: str) -> Entry | None:
        return self.entries.get(escalation_id)

    def listed(self, state: str = "open", task_id: str | None = None) -> list[Entry]:
        out = [
            e
            for e in self.entries.values()
            if (state == "all" or e.state == state) and (task_id is None or e.task_id == task_id)
        ]
        return out


def problem(entry: Entry, answer: EscalationAnswered) -> tuple[int, str, str] | None:
    """(HTTP status, code, message) when `answer` cannot be taken, else None."""
    if entry.answer is not None:
        a = entry.answer
        when = entry.answered_at.isoformat() if entry.answered_at else a.answered_at.isoformat()
        return (
            409,
            "already_answered",
            f"escalation {entry.raised.escalation_id} was already answered ({a.action}) by "
            f"{a.principal} at {when}; an escalation takes one answer",
        )
    if entry.ended is not None:
        return (
            409,
            "task_ended",
            f"task {entry.task_id} already ended ({entry.ended}); there is nothing to answer",
        )
    if not valid(entry.raised, answer):
        ids = ", ".join(c.candidate_id for c in entry.raised.candidates) or "(none)"
        return (
            400,
            "not_on_ballot",
            f"candidate {answer.candidate_id!r} is not on the ballot of "
            f"{entry.raised.escalation_id}; send candidate_id as one of: {ids}",
        )
    return None
