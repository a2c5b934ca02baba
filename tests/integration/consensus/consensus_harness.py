"""What the consensus service tests share: the service as a process, fake jurors,
a reader of decisions, and the offline fold that says what must have been decided.

The jurors are a task in the test process: they read synod.votes like a
reviewer, answer the consensus service's round requests that name them, and
behave as each proposal's script says (honest, wrong, silent, late, lying,
equivocating). The offline fold reads synod.votes once everything is over and
computes each proposal's decision with the consensus core alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from tests.polling import wait_until_async

from synod.core.consensus import Decision, ProposalMachine, Tick, VoteReceived, replay, wiremap
from synod.core.consensus.events import Event
from synod.ids import derived_id
from synod.transport import Publisher
from synod.transport.topics import TASK_EVENTS, VOTES, topic_name
from synod.wire import (
    BallotDeadline,
    Candidate,
    Codec,
    Envelope,
    Sender,
    Vote,
    VoteRequested,
)
from synod.wire import Decision as WireDecision

PLANNER = Sender(role="planner", instance="planner-test")
Behaviour = Literal[
    "honest",
    "wrong",
    "reject",
    "abstain",
    "silent",
    "late",
    "equivocate",
    "equivocate_late",
    "junk",
]

# ---------------------------------------------------------------- the service

# What may differ between two copies of one decision (see check_decided_once).
COPY_FIELDS = {"sender", "vclock", "lamport", "hlc"}


class ServiceProcess:
    """`python -m synod_services.consensus` as a child process, its log in a file."""

    def __init__(
        self, bootstrap: str, prefix: str, instance: str, log_dir: Path, **env: str
    ) -> None:
        self.instance = instance
        self.log_path = log_dir / f"{instance}.log"
        self.env = {
            **os.environ,
            "SYNOD_BOOTSTRAP": bootstrap,
            "SYNOD_TOPIC_PREFIX": prefix,
            "SYNOD_INSTANCE": instance,
            "SYNOD_HEALTH_PORT": "-1",
            # Fast failover: a SIGKILLed member's partitions move after this.
            "SYNOD_SESSION_TIMEOUT_MS": "2000",
            "SYNOD_HEARTBEAT_INTERVAL_MS": "300",
            "SYNOD_CONSENSUS_TICK_INTERVAL_S": "0.1",
            "SYNOD_CONSENSUS_COMMIT_INTERVAL_S": "0.3",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synod_services.consensus"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM: commit and leave the group; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                events.append(json.loads(line))
        return events

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------- proposals


@dataclass
class Script:
    """One proposal and how each juror behaves when asked (in every ballot)."""

    task_id: str
    policy: str
    voters: list[str]
    candidates: list[str]
    truth: str
    deadline_s: float
    behaviour: dict[str, Behaviour]
    liar: str | None = None  # the Byzantine juror, if any
    # Its votes go out, acknowledged, before any honest one: an equivocation that
    # reaches the log before the decision.
    liar_first: bool = False

    @property
    def proposal_id(self) -> str:
        return f"{self.task_id}/answer"

    def opening(self) -> Envelope[VoteRequested]:
        body = VoteRequested(
            proposal_id=self.proposal_id,
            candidates=[Candidate(candidate_id=c, content=f"answer {c}") for c in self.candidates],
            electorate=self.voters,
            policy=self.policy,  # type: ignore[arg-type]
            deadline_s=self.deadline_s,
        )
        return Envelope.new(
            body,
            sender=PLANNER,
            task_id=self.task_id,
            message_id=derived_id(self.task_id, "vote-requested"),
        )


def mixed_scripts(run: str, n: int, rng: random.Random) -> list[Script]:
    """Mixed policies and behaviours: most proposals decide in ballot 1, some need
    re-ballots (late or silent jurors), some end rejected or without a quorum."""
    policies = ["majority", "supermajority", "unanimity", "confidence", "adaptive"]
    scripts = []
    for i in range(n):
        size = rng.choice([4, 5])
        voters = [f"reviewer-{j}" for j in range(size)]
        candidates = ["a", "b", "c"][: rng.choice([2, 3])]
        truth = rng.choice(candidates)
        behaviour: dict[str, Behaviour] = {}
        for voter in voters:
            behaviour[voter] = rng.choices(
                ["honest", "wrong", "reject", "abstain", "silent", "late", "equivocate"],
                weights=[78, 6, 2, 2, 4, 4, 4],
            )[0]  # type: ignore[assignment]
        scripts.append(
            Script(
                task_id=f"{run}-{i:04d}",
                policy=rng.choice(policies),
                voters=voters,
                candidates=candidates,
                truth=truth,
                deadline_s=rng.choice([2.5, 4.0, 6.0]),
                behaviour=behaviour,
            )
        )
    return scripts


class Jurors:
    """Fake reviewers: answer the consensus service's round requests per script."""

    def __init__(
        self, bootstrap: str, prefix: str, scripts: list[Script], rng: random.Random
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic_name(VOTES, prefix)
        self.scripts = {s.proposal_id: s for s in scripts}
        self.rng = rng
        self.codec = Codec()
        self.publisher = Publisher(bootstrap, client_id="jurors")
        self.seen: set[str] = set()
        self.requests = 0
        self.votes_sent = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.publisher.start()
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.publisher.stop()

    async def publish(self, envelope: Envelope[Any]) -> None:
        await self.publisher.publish(self.topic, envelope)

    async def _run(self) -> None:
        consumer = await _reader(self.bootstrap, self.topic)
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                for records in batch.values():
                    for record in records:
                        self._on_record(self.codec.decode(record.value))
        finally:
            await consumer.stop()

    def _on_record(self, env: Envelope[Any]) -> None:
        body = env.body
        if not isinstance(body, VoteRequested) or env.sender.role != "consensus":
            return
        if env.message_id in self.seen:
            return  # a request re-emitted after a crash: same id, answered already
        self.seen.add(env.message_id)
        script = self.scripts.get(body.proposal_id)
        if script is None:
            return
        self.requests += 1
        task = asyncio.create_task(self._answer(script, env))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, script: Script, request: Envelope[Any]) -> None:
        body: VoteRequested = request.body
        asked = [v for v in body.electorate if v in script.behaviour]
        liar_first = [v for v in asked if script.liar_first and v == script.liar]
        for voter in liar_first:
            # Sent and acknowledged before any honest vote: the order on the log.
            for vote in self._votes(script, request, voter):
                await self.publish(vote)
                self.votes_sent += 1
        rest = [v for v in asked if v not in liar_first]
        await asyncio.gather(*(self._answer_one(script, request, v) for v in rest))

    async def _answer_one(self, script: Script, request: Envelope[Any], voter: str) -> None:
        behaviour = script.behaviour[voter]
        if behaviour == "silent":
            return
        delay = self.rng.random() * 0.3
        if behaviour == "late":
            delay += request.body.deadline_s + 0.5
        await asyncio.sleep(delay)
        for vote in self._votes(script, request, voter):
            await self.publish(vote)
            self.votes_sent += 1

    def _votes(self, script: Script, request: Envelope[Any], voter: str) -> list[Envelope[Any]]:
        behaviour = script.behaviour[voter]
        wrong = [c for c in script.candidates if c != script.truth] or [script.truth]
        # Seeded per juror and round: the same request always gets the same answer.
        rng = random.Random(f"{request.message_id}/{voter}")
        confidence = round(0.5 + rng.random() / 2, 3)
        answers: list[tuple[str, str | None]]
        ballot = request.body.ballot
        if behaviour in ("honest", "late"):
            answers = [("choice", script.truth)]
        elif behaviour == "wrong":
            answers = [("choice", rng.choice(wrong))]
        elif behaviour == "reject":
            answers = [("reject", None)]
        elif behaviour == "abstain":
            answers = [("abstain", None)]
        elif behaviour == "equivocate":
            answers = [("choice", rng.choice(wrong)), ("choice", script.truth)]
        elif behaviour == "equivocate_late":
            answers = [("choice", script.truth), ("choice", rng.choice(wrong))]
        elif behaviour == "junk":
            # A candidate nobody proposed, then a vote for a ballot not yet open.
            answers = [("choice", "zz"), ("choice", rng.choice(wrong))]
        else:
            answers = []
        out = []
        for k, (kind, choice) in enumerate(answers):
            vote = Vote(
                proposal_id=script.proposal_id,
                ballot=ballot + 1 if behaviour == "junk" and k == 1 else ballot,
                voter=voter,
                kind=kind,  # type: ignore[arg-type]
                choice=choice,
                confidence=confidence,
            )
            out.append(
                Envelope.new(
                    vote,
                    sender=Sender(role="reviewer", instance=voter),
                    task_id=script.task_id,
                    # A reviewer's id scheme; an equivocator's second vote is a new message.
                    message_id=derived_id(request.message_id, voter, k),
                    causes=[request.message_id],
                )
            )
        return out


async def open_proposals(
    publisher: Publisher,
    prefix: str,
    scripts: list[Script],
    rate_per_s: float,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """The planner's part: open each proposal, `rate_per_s` of them a second."""
    topic = topic_name(VOTES, prefix)
    started = time.monotonic()
    for i, script in enumerate(scripts):
        due = started + i / rate_per_s
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        # A fresh created_at: the proposal's clock starts now.
        env = script.opening().model_copy(update={"created_at": datetime.now(UTC)})
        await publisher.publish(topic, env)
        if on_progress is not None:
            on_progress(i + 1)


# ---------------------------------------------------------------- reading back


async def _reader(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer


async def read_topic(bootstrap: str, topic: str) -> dict[int, list[tuple[int, bytes]]]:
    """Every record now on the topic: partition -> [(offset, value)] in offset order."""
    consumer = await _reader(bootstrap, topic)
    try:
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        ends = await consumer.end_offsets(tps)
        out: dict[int, list[tuple[int, bytes]]] = {tp.partition: [] for tp in tps}
        async with asyncio.timeout(60):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    out[tp.partition].extend((r.offset, r.value) for r in records)
        return out
    finally:
        await consumer.stop()


class DecisionWatcher:
    """Counts proposals with a Decision on synod.task-events while a test runs."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic_name(TASK_EVENTS, prefix)
        self.codec = Codec()
        self.decided: set[str] = set()
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = await _reader(self.bootstrap, self.topic)
        self._runner = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        body = self.codec.decode(record.value).body
                        if isinstance(body, WireDecision):
                            self.decided.add(body.proposal_id)
        finally:
            await consumer.stop()

    async def wait_for(self, wanted: set[str], timeout_s: float, check: Callable[[], None]) -> None:
        """Until every wanted proposal has a decision; `check` raises if the run went wrong."""

        def decided() -> bool:
            check()
            return wanted <= self.decided

        await wait_until_async(
            decided, what=f"decisions on {sorted(wanted)}", timeout_s=timeout_s, interval_s=0.1
        )

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner


# ---------------------------------------------------------------- offline


def offline_decisions(log: dict[int, list[tuple[int, bytes]]]) -> dict[str, Decision | None]:
    """Each proposal's decision computed from synod.votes by the core alone.

    Read like the protocol says: the planner's first VoteRequested opens a
    proposal, the first record with a message id counts, votes go in as
    VoteReceived, and a consensus deadline marker for the current ballot is a
    Tick at its time. Then `replay(proposal, events)` decides.
    """
    codec = Codec()
    machines: dict[str, tuple[ProposalMachine, set[str], list[Event]]] = {}
    for partition in sorted(log):
        for _, value in log[partition]:
            env = codec.decode(value)
            body = env.body
            if isinstance(body, VoteRequested):
                if env.sender.role == "planner" and body.proposal_id not in machines:
                    proposal = wiremap.proposal_from_wire(
                        body, task_id=env.task_id or "", opened_at=env.created_at
                    )
                    machines[body.proposal_id] = (ProposalMachine.open(proposal)[0], set(), [])
                continue
            event: Event | None
            if isinstance(body, Vote):
                pid, event = body.proposal_id, VoteReceived(wiremap.vote_from_wire(body))
            elif isinstance(body, BallotDeadline) and env.sender.role == "consensus":
                target = wiremap.marker_target(body)
                pid, event = target[0], None
                entry = machines.get(pid)
                if entry is not None and entry[0].ballot == target[1]:
                    event = Tick(wiremap.epoch_seconds(env.created_at))
            else:
                continue
            if pid not in machines or env.message_id in machines[pid][1]:
                continue
            machine, seen, events = machines[pid]
            seen.add(env.message_id)
            if event is not None and machine.decision is None:
                events.append(event)
                machine.step(event)
    return {pid: replay(m.proposal, events) for pid, (m, _, events) in machines.items()}


@dataclass
class Outcome:
    decisions: dict[str, list[Envelope[Any]]] = field(default_factory=lambda: defaultdict(list))
    # The bytes of each copy, aligned with `decisions`.
    encoded: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    requests: dict[str, list[Envelope[Any]]] = field(default_factory=lambda: defaultdict(list))
    markers: int = 0
    votes: int = 0

    @property
    def copies(self) -> int:
        return sum(len(v) for v in self.decisions.values())

    @property
    def duplicates(self) -> int:
        return self.copies - len(self.decisions)

    @property
    def request_duplicates(self) -> int:
        return sum(len(v) - 1 for v in self.requests.values())


async def collect(
    bootstrap: str, prefix: str
) -> tuple[Outcome, dict[int, list[tuple[int, bytes]]]]:
    """Everything the service published, and the vote log."""
    codec = Codec()
    outcome = Outcome()
    events = await read_topic(bootstrap, topic_name(TASK_EVENTS, prefix))
    for records in events.values():
        for _, value in records:
            env = codec.decode(value)
            if isinstance(env.body, WireDecision):
                outcome.decisions[env.body.proposal_id].append(env)
                outcome.encoded[env.body.proposal_id].append(value)
    votes = await read_topic(bootstrap, topic_name(VOTES, prefix))
    for records in votes.values():
        for _, value in records:
            env = codec.decode(value)
            if isinstance(env.body, VoteRequested) and env.sender.role == "consensus":
                outcome.requests[env.message_id].append(env)
            elif isinstance(env.body, BallotDeadline):
                outcome.markers += 1
            elif isinstance(env.body, Vote):
                outcome.votes += 1
    return outcome, votes


def check_decided_once(
    scripts: list[Script], outcome: Outcome, expected: dict[str, Decision | None]
) -> None:
    """Every proposal: one decision (copies identical, one id), the offline one."""
    assert set(outcome.decisions) == {s.proposal_id for s in scripts}, "missing or unknown"
    for script in scripts:
        pid = script.proposal_id
        copies = outcome.decisions[pid]
        first = copies[0]
        offline = expected[pid]
        assert offline is not None, f"{pid}: the log does not decide it, the service did"
        assert first.message_id == derived_id(offline.decision_id)
        assert first.body == wiremap.decision_to_wire(offline), (
            f"{pid}: service decided {first.body}, the log says {offline}"
        )
        for copy, encoded in zip(copies[1:], outcome.encoded[pid][1:], strict=True):
            # Same id, same message: only who re-emitted it may differ, and the clocks
            # that instance stamped on its copy (synod.transport.causal stamps every
            # publish; consumers keep the first copy by message id).
            assert copy.message_id == first.message_id
            a, b = copy.model_dump(exclude=COPY_FIELDS), first.model_dump(exclude=COPY_FIELDS)
            assert a == b, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
            same_stamp = copy.lamport == first.lamport and copy.hlc == first.hlc
            if copy.sender == first.sender and same_stamp:
                assert encoded == outcome.encoded[pid][0], f"{pid}: a copy differs in bytes"
    for pid, copies in outcome.requests.items():
        for copy in copies[1:]:
            a, b = copy.model_dump(exclude=COPY_FIELDS), copies[0].model_dump(exclude=COPY_FIELDS)
            assert a == b, f"round request {pid} re-emitted differently: " + str(
                {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
            )
