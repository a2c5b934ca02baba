"""Hand-built Synod logs for tests of `synod check`: what the services would write
(stamped by the real Stamper, round-tripped through the real codec), to doctor."""

from __future__ import annotations

from typing import Any

from synod.core.check import LogRecord
from synod.core.workspace import write_id_for
from synod.transport.causal import HANDLING, Stamper
from synod.wire import Codec, Envelope, Sender
from synod.wire.messages import (
    Candidate,
    Decision,
    FileWritten,
    StepCompleted,
    StepRequested,
    TaskCompleted,
    TaskSubmitted,
    Vote,
    VoteRequested,
)

CODEC = Codec()
EVENTS, VOTES, WORKSPACE = "synod.task-events", "synod.votes", "synod.workspace"


class Log:
    """A task's log, written record by record as the services would."""

    def __init__(self, task_id: str = "t-1") -> None:
        self.task_id = task_id
        self.records: list[LogRecord] = []
        self.stampers: dict[str, Stamper] = {}
        self.offsets: dict[str, int] = {}

    def send(
        self,
        who: str,
        topic: str,
        body: Any,
        *,
        because: Envelope[Any] | None = None,
        **fields: Any,
    ) -> Envelope[Any]:
        stamper = self.stampers.get(who)
        if stamper is None:
            # A newcomer has read the log so far (what it was delivered).
            stamper = self.stampers[who] = Stamper(who, clock_ms=lambda: 1_000_000)
            for r in self.records:
                stamper.observe(r.topic, r.envelope)
        role = who.split("-")[0]
        env = Envelope.new(
            body, sender=Sender(role=role, instance=who), task_id=self.task_id, **fields
        )
        token = HANDLING.set(because)
        try:
            env = stamper.stamp(topic, env)
        finally:
            HANDLING.reset(token)
        return self.append(topic, env)

    def append(self, topic: str, env: Envelope[Any]) -> Envelope[Any]:
        decoded = CODEC.decode(CODEC.encode(env, "avro"))  # as read from the broker
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        self.records.append(LogRecord(topic, 0, offset, decoded))
        for stamper in self.stampers.values():
            stamper.observe(topic, decoded)
        return decoded


def honest(task_id: str = "t-1") -> tuple[Log, dict[str, Envelope[Any]]]:
    """One task, submitted to completed, with a coder\'s write and a two-vote decision."""
    log = Log(task_id)
    sub = log.send("planner-0", EVENTS, TaskSubmitted(goal="g"))
    req = log.send(
        "planner-0",
        EVENTS,
        StepRequested(step_id="s1", role="coder", title="t", instructions="i", files=["a.py"]),
        because=sub,
    )
    write = FileWritten(
        path="a.py",
        content="x = 1\n",
        writer="coder-1",
        step_id="s1",
        write_id=write_id_for(req.message_id, "a.py"),
    )
    log.send("coder-1", WORKSPACE, write, because=req, message_id=write.write_id)
    done = log.send("coder-1", EVENTS, StepCompleted(step_id="s1", output="x"), because=req)
    ask = log.send(
        "planner-0",
        EVENTS,
        VoteRequested(
            proposal_id="p1",
            candidates=[Candidate(candidate_id="c1", content="x")],
            electorate=["reviewer-0", "reviewer-1", "reviewer-2"],
        ),
        because=done,
    )
    votes = [
        log.send(
            f"reviewer-{i}",
            VOTES,
            Vote(proposal_id="p1", voter=f"reviewer-{i}", choice="c1"),
            because=ask,
        )
        for i in range(2)
    ]
    decision = Decision(
        decision_id="p1/decision", proposal_id="p1", ballot=1, outcome="c1", quorum=2
    )
    dec = log.send(
        "consensus-0", EVENTS, decision, because=votes[-1], causes=[v.message_id for v in votes]
    )
    end = log.send("planner-0", EVENTS, TaskCompleted(result="x", plan_id="p"), because=dec)
    return log, {"sub": sub, "req": req, "done": done, "ask": ask, "dec": dec, "end": end}
