"""The discrete-event loop behind `simulate_team`: agents, attempts, writes, messages.

`synod.core.teamsim.run` says what a run models, how messages and tokens are
counted and why one seed reproduces a run; this module is the loop itself.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from synod.core.plan.dag import Plan
from synod.core.plan.modes import (
    Action,
    AttemptFailed,
    AttemptFinished,
    AttemptStarted,
    Cancel,
    CentralEngine,
    ClaimAttempted,
    ClaimEngine,
    ClaimGranted,
    ClaimLost,
    EngineStats,
    Hedge,
    Mode,
    Run,
    TeamDone,
    TeamEvent,
    TeamFailed,
    Tick,
)
from synod.core.teamsim.model import (
    BOARD,
    Ack,
    SimConfig,
    StepTime,
    TeamRun,
    draw_duration,
    lost_writes,
)
from synod.core.teamsim.synod import SynodEngine
from synod.core.workspace import (
    Applied,
    Conflict,
    FileWrite,
    Lease,
    Rejected,
    Resolve,
    VersionVector,
    Workspace,
)

_MAX_ROUNDS = 1_000_000  # a bound on the loop; a 20-step plan needs a few hundred


@dataclass
class _Attempt:
    step_id: str
    attempt: int
    agent: str
    start: float
    finish: float
    bases: dict[str, VersionVector]


class _Sim:
    def __init__(
        self,
        plan: Plan,
        agents: tuple[str, ...],
        mode: Mode,
        seed: int,
        cfg: SimConfig,
        engine: CentralEngine | ClaimEngine | SynodEngine,
        ws: Workspace,
        est: dict[str, float],
        pinned: Mapping[tuple[str, int], float],
        durations: dict[str, float],
    ) -> None:
        self.plan, self.agents, self.mode, self.seed, self.cfg = plan, agents, mode, seed, cfg
        self.engine = engine
        self.ws, self.est, self.pinned, self.durations = ws, est, pinned, durations
        self.free = list(range(len(agents)))  # pool order: lowest index first
        self.index = {a: i for i, a in enumerate(agents)}
        self.running: dict[tuple[str, int], _Attempt] = {}
        self.queue: list[tuple[float, int, tuple[str, ...]]] = []
        self.seq = 0
        self.now = 0.0
        self.messages: Counter[str] = Counter()
        self.run_time = 0.0
        self.acks: list[Ack] = []
        self.writes = 0
        self.concurrent = 0
        self.board_races = 0
        self.claims_lost = 0
        self.in_flight: dict[str, VersionVector] = {}  # agent -> board version it read
        self.won: dict[str, StepTime] = {}
        self.outputs: Counter[str] = Counter()
        self.dots = 0

    # ------------------------------------------------------------ loop

    def run(self) -> TeamRun:
        engine = self.engine
        self.messages["task"] += 2
        events: list[TeamEvent] = [Tick(0.0)]
        for _ in range(_MAX_ROUNDS):
            actions = engine.handle(events)
            events = []
            done = self._carry_out(actions, events)
            if done is not None:
                return self._result(done, engine.stats)
            if isinstance(engine, ClaimEngine):
                self._read_the_list(engine)
            if events:
                continue  # AttemptStarted reports go back at the same instant
            deadline = engine.next_deadline()
            times = [self.queue[0][0]] if self.queue else []
            if deadline is not None:
                times.append(deadline)
            if not times:
                raise RuntimeError(f"{self.mode} team stalled at t={self.now}: nothing can happen")
            self.now = min(times)
            while self.queue and self.queue[0][0] == self.now:
                _, _, item = heapq.heappop(self.queue)
                self._arrive(item, events)
            events.append(Tick(self.now))
        raise RuntimeError(f"{self.mode} team did not finish in {_MAX_ROUNDS} rounds")

    def _carry_out(self, actions: Sequence[Action], events: list[TeamEvent]) -> TeamDone | None:
        for a in actions:
            if isinstance(a, Run | Hedge):
                agent = a.agent if isinstance(a, Run) else None
                self._start(a.step_id, a.attempt, agent, events)
                if self.mode != "claim":
                    self.messages["step_requested"] += 1
            elif isinstance(a, Cancel):
                self.messages["step_cancelled"] += 1
                att = self.running.pop((a.step_id, a.attempt), None)
                if att is not None:
                    self.run_time += self.now - att.start
                    heapq.heappush(self.free, self.index[att.agent])
            elif isinstance(a, ClaimGranted):
                self.in_flight.pop(a.agent, None)
            elif isinstance(a, ClaimLost):
                self.claims_lost += 1
                self.in_flight.pop(a.agent, None)
            elif isinstance(a, TeamDone):
                return a
            elif isinstance(a, TeamFailed):
                raise RuntimeError(f"{self.mode} team failed in simulation: {a}")
        if self.claims_lost != self.board_races:
            raise RuntimeError(
                f"engine and workspace disagree on claim races: {self.claims_lost} lost claims, "
                f"{self.board_races} concurrent board writes"
            )
        return None

    def _start(
        self, step_id: str, attempt: int, agent: str | None, events: list[TeamEvent]
    ) -> None:
        if agent is None:
            if not self.free:
                raise RuntimeError(f"{self.mode} engine ran {step_id} with no free agent")
            agent = self.agents[heapq.heappop(self.free)]
            events.append(AttemptStarted(step_id, attempt, agent, self.now))
        else:
            i = self.index[agent]
            if i not in self.free:
                raise RuntimeError(f"{self.mode} engine gave {step_id} to busy {agent}")
            self.free.remove(i)
            heapq.heapify(self.free)
        length = self.pinned.get((step_id, attempt))
        if length is None:
            length = (
                self.durations[step_id]
                if attempt == 1
                else draw_duration(
                    self.seed,
                    step_id,
                    attempt,
                    self.est.get(step_id, 1.0),
                    self.cfg.sigma,
                    self.plan.name,
                )
            )
        bases = {f: self.ws.read(f).version for f in self.plan.step(step_id).files}
        att = _Attempt(step_id, attempt, agent, self.now, self.now + length, bases)
        self.running[(step_id, attempt)] = att
        self._push(att.finish, ("finish", step_id, str(attempt)))

    def _push(self, t: float, item: tuple[str, ...]) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (t, self.seq, item))

    def _arrive(self, item: tuple[str, ...], events: list[TeamEvent]) -> None:
        if item[0] == "finish":
            att = self.running.pop((item[1], int(item[2])), None)
            if att is None:
                return  # cancelled before it finished
            self.run_time += att.finish - att.start
            heapq.heappush(self.free, self.index[att.agent])
            self.messages["result"] += 1
            if self._fails(att):
                events.append(AttemptFailed(att.step_id, att.attempt, att.agent, self.now))
                return
            for path, base in att.bases.items():
                if self._write(path, f"{att.step_id}#{att.attempt}", att.agent, base, att.step_id):
                    self.outputs[att.step_id] += 1
            if att.step_id not in self.won:
                self.won[att.step_id] = StepTime(
                    att.step_id, att.attempt, att.agent, att.start, att.finish
                )
            events.append(AttemptFinished(att.step_id, att.attempt, att.agent, self.now))
        else:  # a claim lands on the list
            agent, step_id = item[1], item[2]
            path = f"{BOARD}/{step_id}"
            first = self._write(path, f"claimed by {agent}", agent, self.in_flight[agent], "")
            if not first:
                self.board_races += 1
            events.append(ClaimAttempted(agent, step_id, self.now))

    def _fails(self, att: _Attempt) -> bool:
        if self.cfg.failure_rate == 0.0:
            return False
        key = f"{self.seed}/{self.plan.name}/{att.step_id}/{att.attempt}/fails"
        return random.Random(key).random() < self.cfg.failure_rate

    def _read_the_list(self, engine: ClaimEngine) -> None:
        for agent in self.agents:
            if agent in self.in_flight or not engine.idle(agent):
                continue
            step_id = engine.choose(agent)
            if step_id is None:
                continue
            self.in_flight[agent] = self.ws.read(f"{BOARD}/{step_id}").version
            self._push(self.now + self.cfg.claim_latency_s, ("claim", agent, step_id))

    # ------------------------------------------------------------ workspace

    def _write(
        self, path: str, content: str, writer: str, base: VersionVector, step_id: str
    ) -> bool:
        """One write as the protocol does it; True if it is the file's only current version."""
        self.dots += 1
        wid = f"w{self.dots}"
        lease: Lease | None = None
        if self.cfg.consistency == "strong":
            got = self.ws.leases.acquire(path, writer, self.now, self.cfg.lease_ttl_s)
            self.messages["lease"] += 1
            # Released at once, so a lease is never held by another writer here.
            assert isinstance(got, Lease), got
            lease = got
        out = self.ws.apply(
            FileWrite(path, content, writer, base, step_id, wid, lease.token if lease else None),
            self.now,
        )
        self.writes += 1
        self.messages["write"] += 1
        if lease is not None:
            self.ws.leases.release(path, writer, lease.token)
            self.messages["lease"] += 1
        if isinstance(out, Applied):
            self.acks.append(Ack(wid, out.path, content, out.version))
            return True
        self.concurrent += 1
        if isinstance(out, Rejected):
            if out.reason != "stale_base":
                raise RuntimeError(f"write of {path} rejected for {out.reason}")
            return False
        assert isinstance(out, Conflict)
        self.acks.append(Ack(wid, out.path, content, out.version))
        # Settle at once by keeping the first version in log order; the other is on record.
        view = self.ws.read(path)
        keep = view.siblings[0]
        self.dots += 1
        resolved = self.ws.apply(
            Resolve(path, keep.content, "resolver", view.version, f"w{self.dots}", keep.write_id),
            self.now,
        )
        self.messages["write"] += 1
        assert isinstance(resolved, Applied), resolved
        self.acks.append(Ack(f"w{self.dots}", path, keep.content, resolved.version))
        return False

    # ------------------------------------------------------------ result

    def _result(self, done: TeamDone, stats: EngineStats) -> TeamRun:
        steps = tuple(self.won[s] for s in self.plan.ids)
        return TeamRun(
            mode=self.mode,
            n=len(self.agents),
            seed=self.seed,
            makespan=done.makespan,
            durations=self.durations,
            steps=steps,
            stats=stats,
            messages=dict(sorted(self.messages.items())),
            tokens=round(self.run_time * self.cfg.tokens_per_s),
            writes=self.writes,
            concurrent_writes=self.concurrent,
            lost=lost_writes(self.ws, self.acks),
            outputs_per_step={s: self.outputs[s] for s in self.plan.ids},
            workspace=self.ws,
        )
