"""One task's view: its envelopes kept in log order and the status they fold into."""

from __future__ import annotations

import bisect
from datetime import datetime
from typing import Any

from synod.core.taskview.fold import _Entry, _Fold, _SortKey, _Step
from synod.core.taskview.status import EventRef, StepStatus, TaskState, TaskStatus, VoteStatus
from synod.wire.messages import Envelope, TaskSubmitted


class TaskView:
    """One task's envelopes, in log order, and the status they fold into."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.version = 0  # bumped on every change, so watchers can tell what they have seen
        self._entries: list[_Entry] = []
        self._keys: list[_SortKey] = []
        self._by_id: dict[str, _Entry] = {}
        self._arrivals = 0
        self._fold = _Fold()

    def apply(self, envelope: Envelope[Any], log_offset: int | None = None) -> bool:
        """Fold one envelope in; False if it changed nothing (a duplicate).

        `log_offset` is the envelope's offset in `synod.task-events`; None for a
        copy read elsewhere (`synod.results`) or made by the caller.
        """
        if envelope.task_id != self.task_id:
            raise ValueError(f"envelope of task {envelope.task_id!r} applied to {self.task_id!r}")
        known = self._by_id.get(envelope.message_id)
        if known is not None:
            return self._reposition(known, log_offset)
        entry = _Entry(envelope, log_offset, self._arrivals)
        self._arrivals += 1
        self._by_id[envelope.message_id] = entry
        key = entry.key()
        if not self._keys or key > self._keys[-1]:
            self._entries.append(entry)
            self._keys.append(key)
            self._fold.apply(entry)
        else:
            at = bisect.bisect(self._keys, key)
            self._entries.insert(at, entry)
            self._keys.insert(at, key)
            self._refold()
        self.version += 1
        return True

    def _reposition(self, entry: _Entry, log_offset: int | None) -> bool:
        # A copy in the log places a message seen elsewhere first; of two log
        # copies, the earlier one is the message's place.
        if log_offset is None or (entry.log_offset is not None and entry.log_offset <= log_offset):
            return False
        entry.log_offset = log_offset
        pairs = sorted(((e.key(), e) for e in self._entries), key=lambda p: p[0])
        self._keys = [k for k, _ in pairs]
        self._entries = [e for _, e in pairs]
        self._refold()
        self.version += 1
        return True

    def _refold(self) -> None:
        fold = _Fold()
        for entry in self._entries:
            fold.apply(entry)
        self._fold = fold

    # ------------------------------------------------------------ reading

    @property
    def state(self) -> TaskState:
        return self._fold.state or "submitted"

    @property
    def terminal(self) -> bool:
        return self._fold.terminal

    @property
    def goal(self) -> str:
        return self._fold.request.goal if self._fold.request else ""

    @property
    def request(self) -> TaskSubmitted | None:
        return self._fold.request

    @property
    def updated_at(self) -> datetime | None:
        return self._fold.updated_at

    def __len__(self) -> int:
        return len(self._entries)

    def envelopes(self) -> list[Envelope[Any]]:
        """The task's envelopes in log order."""
        return [e.envelope for e in self._entries]

    def entries(self) -> list[tuple[Envelope[Any], int | None]]:
        """The envelopes in log order, each with its offset in the task's log
        (None while it has been seen only elsewhere)."""
        return [(e.envelope, e.log_offset) for e in self._entries]

    def events(self) -> list[EventRef]:
        return [
            EventRef(
                type=e.envelope.type,
                message_id=e.envelope.message_id,
                sender=e.envelope.sender,
                created_at=e.envelope.created_at,
                log_offset=e.log_offset,
                causes=list(e.envelope.causes),
                vclock=dict(e.envelope.vclock),
                lamport=e.envelope.lamport,
                hlc=e.envelope.hlc,
                causal_gap=sorted(e.causal_gap),
            )
            for e in self._entries
        ]

    def mark_gap(self, message_id: str, missing: frozenset[str]) -> None:
        """Note that an event was shown before some of its causes (a causal_gap)."""
        entry = self._by_id.get(message_id)
        if entry is not None and missing:
            entry.causal_gap = entry.causal_gap | missing
            self.version += 1

    def status(self) -> TaskStatus:
        f = self._fold
        return TaskStatus(
            task_id=self.task_id,
            state=self.state,
            goal=self.goal,
            request=f.request,
            plan_id=f.plan_id,
            steps=self._steps(),
            votes=[
                VoteStatus(
                    proposal_id=v.proposal_id,
                    ballot=v.ballot,
                    subject=v.subject,
                    candidates=v.candidates,
                    electorate=v.electorate,
                    policy=v.policy,
                    partition_mode=v.partition_mode,
                    requested_at=v.requested_at,
                    votes_seen=v.votes_seen,
                    decision=v.decision,
                )
                for v in f.votes.values()
            ],
            decision=f.decision,
            result=f.result,
            failure=f.failure,
            usage=f.final_usage or f.step_usage,
            submitted_at=f.submitted_at,
            updated_at=f.updated_at,
            finished_at=f.finished_at,
            duration_s=f.duration_s,
            events=self.events(),
            consistency=f.request.consistency if f.request else "strong",
            blackboard=f.blackboard(),
            partition_mode=f.request.partition_mode if f.request else "",
            settlement=f.settlement,
            overturned=list(f.overturned),
        )

    def to_json(self) -> dict[str, Any]:
        """The status as a JSON-ready dict."""
        return self.status().model_dump(mode="json")

    def _steps(self) -> list[StepStatus]:
        """The executed (or last proposed) plan's steps in plan order, then any others."""
        f = self._fold
        planned = f.plans.get(f.plan_id or "", f.carried_plan)
        out = [f.steps.get(p.step_id, _Step(p.step_id)).describe(p) for p in planned]
        listed = {p.step_id for p in planned}
        out.extend(s.describe(None) for s in f.steps.values() if s.step_id not in listed)
        return out
