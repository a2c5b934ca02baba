"""Three ways a team runs a plan, as sans-I/O engines: events in, actions out.

The paper behind Synod ran teams two ways; Synod adds a third:

- `central` (`CentralEngine`): the paper's pre-assigned teams. Before
  anything runs, steps are dealt to the agents round-robin in priority
  order. Each agent works through its own list in order and, when the next
  step on its list still waits for a dependency, it waits too, even if
  another agent's step is ready.
- `claim` (`ClaimEngine`): the paper's decentralized teams. Agents take work
  themselves from a shared list. An idle agent reads the list and claims
  the first pending step it sees, in priority order, without checking its
  dependencies (the paper's agents did not reliably do so): a claim whose
  dependencies are not done is a *blocked claim*, and the agent sits on it
  until they are. Two agents that read the list before either claim landed
  may claim the same step; the first claim in log order wins, the other is
  a *concurrent claim*, and its agent reads the list again.
- `synod` (`synod.core.teamsim.SynodEngine`): the planner's own task core
  (`synod.core.task`) in this vocabulary. Only ready steps are sent to the
  coder pool, critical path first; stragglers are hedged; the first result
  wins and the other attempts are cancelled.

All three share one vocabulary, so an adapter (the simulator in
`synod.core.teamsim`, or the Kafka services behind `synod team run`) drives
any of them the same way:

    in:  Tick(now)                                   time passes; the first event starts the run
         ClaimAttempted(agent, step_id, now)         claim mode: an agent's claim reached the list
         AttemptStarted(step_id, attempt, agent, now)  an agent began an attempt (pool dispatch)
         AttemptFinished(step_id, attempt, agent, now, ok)
         AttemptFailed(step_id, attempt, agent, now, error_class, reason)
    out: Run(step_id, attempt, agent)               an agent works on a step now (agent None:
                                                     any agent of the pool, as a consumer group)
         Hedge(step_id, attempt, straggler)          run a straggling step again on any free agent
         Cancel(step_id, attempt, agent)             stop an attempt whose result is not needed
         ClaimGranted(agent, step_id, blocked_on)    the claim won; blocked_on lists unfinished deps
         ClaimLost(agent, step_id, winner)           someone claimed the step first
         TeamDone(now, makespan) | TeamFailed(step_id, reason, now)

`handle(events)` takes a batch of events that happened together and decides
once, after all of them. Engines never read a clock and never pick an agent
at random; every tie is broken by agent order or plan order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from synod.core.plan.dag import Plan

# The vocabulary lives in `teamvocab`; it is re-exported here, where importers find it.
from synod.core.plan.teamvocab import (
    MODES,
    Action,
    AttemptFailed,
    AttemptFinished,
    AttemptStarted,
    Cancel,
    ClaimAttempted,
    ClaimGranted,
    ClaimLost,
    EngineConfig,
    EngineStats,
    Hedge,
    Mode,
    Run,
    TeamDone,
    TeamEngine,
    TeamEvent,
    TeamFailed,
    Tick,
    _check_agents,
    list_order,
)
from synod.errors import ConfigError, ErrorClass

__all__ = [
    "MODES",
    "Action",
    "AttemptFailed",
    "AttemptFinished",
    "AttemptStarted",
    "Cancel",
    "CentralEngine",
    "ClaimAttempted",
    "ClaimEngine",
    "ClaimGranted",
    "ClaimLost",
    "EngineConfig",
    "EngineStats",
    "Hedge",
    "Mode",
    "Run",
    "TeamDone",
    "TeamEngine",
    "TeamEvent",
    "TeamFailed",
    "Tick",
    "list_order",
]


# ---------------------------------------------------------------- shared bookkeeping


@dataclass
class _StepState:
    waiting_for: int
    done: bool = False
    attempts: int = 0
    failures: int = 0
    live: dict[int, str] = field(default_factory=dict)  # attempt -> agent


class _Base:
    """Step completion, retries and the end of the run, for the agent-bound modes."""

    mode: Mode

    def __init__(self, plan: Plan, agents: Sequence[str], config: EngineConfig) -> None:
        self.plan = plan
        self.agents = _check_agents(agents)
        self.config = config
        self.order = list_order(plan)
        self._steps = {sid: _StepState(len(plan.depends_on(sid))) for sid in plan.ids}
        self._busy: dict[str, tuple[str, int] | None] = {a: None for a in self.agents}
        self._now: float | None = None
        self._start = 0.0
        self._done = 0
        self._outcome: TeamDone | TeamFailed | None = None
        self._stats = EngineStats()

    def _count(self, **inc: int) -> None:
        s = self._stats
        self._stats = replace(s, **{k: getattr(s, k) + v for k, v in inc.items()})

    def _advance(self, now: float) -> None:
        if self._now is None:
            self._now = self._start = now
        else:
            self._now = max(self._now, now)

    @property
    def now(self) -> float:
        return self._now if self._now is not None else 0.0

    def handle(self, events: Iterable[TeamEvent]) -> tuple[Action, ...]:
        out: list[Action] = []
        seen = False
        for e in events:
            seen = True
            self._advance(e.now)
            if self._outcome is not None:
                continue
            if isinstance(e, AttemptFinished) and e.ok:
                self._on_success(e)
            elif isinstance(e, AttemptFinished | AttemptFailed):
                error_class: ErrorClass = (
                    e.error_class if isinstance(e, AttemptFailed) else "transient"
                )
                self._on_failure(e.step_id, e.attempt, e.agent, error_class, out)
            elif isinstance(e, ClaimAttempted):
                self._on_claim(e, out)
            # AttemptStarted and Tick carry nothing new for agent-bound modes.
        if seen and self._outcome is None:
            if self._done == len(self._steps):
                self._outcome = TeamDone(self.now, self.now - self._start)
                out.append(self._outcome)
            else:
                self._decide(out)
        return tuple(out)

    def _on_claim(self, e: ClaimAttempted, out: list[Action]) -> None:
        raise ConfigError(f"{self.mode} mode takes no claims (got one from {e.agent})")

    def _decide(self, out: list[Action]) -> None:
        raise NotImplementedError

    def _live_attempt(self, step_id: str, attempt: int) -> _StepState | None:
        st = self._steps.get(step_id)
        if st is None or st.done or attempt not in st.live:
            if st is not None and st.done:
                self._count(duplicates=1)
            return None
        return st

    def _on_success(self, e: AttemptFinished) -> None:
        st = self._live_attempt(e.step_id, e.attempt)
        if st is None:
            return
        agent = st.live.pop(e.attempt)
        self._busy[agent] = None
        st.done = True
        self._done += 1
        for c in self.plan.dependents(e.step_id):
            self._steps[c].waiting_for -= 1

    def _on_failure(
        self, step_id: str, attempt: int, agent: str, error_class: ErrorClass, out: list[Action]
    ) -> None:
        st = self._live_attempt(step_id, attempt)
        if st is None:
            return
        st.live.pop(attempt)
        st.failures += 1
        if error_class == "transient" and st.failures < self.config.max_attempts:
            # The same agent tries again: in both agent-bound modes the step is its own.
            st.attempts += 1
            st.live[st.attempts] = agent
            self._busy[agent] = (step_id, st.attempts)
            self._count(retries=1, runs=1)
            out.append(Run(step_id, st.attempts, agent))
            return
        self._busy[agent] = None
        for sid, other in self._steps.items():
            for a, ag in sorted(other.live.items()):
                out.append(Cancel(sid, a, ag))
                self._count(cancels=1)
            other.live.clear()
        self._outcome = TeamFailed(
            step_id, f"{error_class}: {st.failures} failed attempts", self.now
        )
        out.append(self._outcome)

    def _ready(self, step_id: str) -> bool:
        return self._steps[step_id].waiting_for == 0

    def _start_run(self, step_id: str, agent: str, out: list[Action]) -> None:
        st = self._steps[step_id]
        st.attempts += 1
        st.live[st.attempts] = agent
        self._busy[agent] = (step_id, st.attempts)
        self._count(runs=1)
        out.append(Run(step_id, st.attempts, agent))

    def next_deadline(self) -> float | None:
        return None

    @property
    def outcome(self) -> TeamDone | TeamFailed | None:
        return self._outcome

    @property
    def stats(self) -> EngineStats:
        return self._stats

    def is_done(self, step_id: str) -> bool:
        return self._steps[step_id].done


# ---------------------------------------------------------------- central


class CentralEngine(_Base):
    """Pre-assigned lists: agent i gets steps i, i+n, i+2n, ... of `list_order(plan)`."""

    mode: Mode = "central"

    def __init__(
        self, plan: Plan, agents: Sequence[str], config: EngineConfig | None = None
    ) -> None:
        super().__init__(plan, agents, config or EngineConfig())
        n = len(self.agents)
        self.assignment: dict[str, tuple[str, ...]] = {
            a: self.order[i::n] for i, a in enumerate(self.agents)
        }
        self._next = {a: 0 for a in self.agents}
        self._waiting: set[str] = set()

    def _decide(self, out: list[Action]) -> None:
        for agent in self.agents:
            if self._busy[agent] is not None:
                continue
            mine = self.assignment[agent]
            while self._next[agent] < len(mine) and self._steps[mine[self._next[agent]]].done:
                self._next[agent] += 1
            if self._next[agent] == len(mine):
                continue
            sid = mine[self._next[agent]]
            if self._ready(sid):
                self._waiting.discard(agent)
                self._start_run(sid, agent, out)
            elif agent not in self._waiting:
                self._waiting.add(agent)
                self._count(waits=1)


# ---------------------------------------------------------------- claim


class ClaimEngine(_Base):
    """The shared list. Agents claim; the list grants first-wins and runs a claim once unblocked.

    The adapter asks `choose(agent)` what an idle agent would claim given the
    list as it is now, and later (after the claim's trip to the list) feeds
    `ClaimAttempted`. Between the two, other claims may land: that is how two
    agents come to claim one step.
    """

    mode: Mode = "claim"

    def __init__(
        self, plan: Plan, agents: Sequence[str], config: EngineConfig | None = None
    ) -> None:
        super().__init__(plan, agents, config or EngineConfig())
        self.owner: dict[str, str] = {}  # step -> agent whose claim won
        self._held: dict[str, str | None] = {a: None for a in self.agents}  # agent -> claimed step
        self._pending: list[str] = []  # claimed steps not started, in claim order

    def choose(self, agent: str) -> str | None:
        """The step `agent` would claim now: the first unclaimed step on the list, or None."""
        if agent not in self._held:
            raise ConfigError(f"unknown agent '{agent}'")
        if self._held[agent] is not None:
            return None
        return next((s for s in self.order if s not in self.owner), None)

    def idle(self, agent: str) -> bool:
        """True when `agent` holds no claim: it should read the list and claim."""
        return self._held[agent] is None

    def _on_claim(self, e: ClaimAttempted, out: list[Action]) -> None:
        if e.agent not in self._held:
            raise ConfigError(f"unknown agent '{e.agent}'")
        if e.step_id not in self._steps:
            raise ConfigError(f"agent '{e.agent}' claimed unknown step '{e.step_id}'")
        if self._held[e.agent] is not None:
            raise ConfigError(f"agent '{e.agent}' claimed '{e.step_id}' while holding a claim")
        self._count(claims=1)
        winner = self.owner.get(e.step_id)
        if winner is not None:
            self._count(concurrent_claims=1)
            out.append(ClaimLost(e.agent, e.step_id, winner))
            return
        self.owner[e.step_id] = e.agent
        self._held[e.agent] = e.step_id
        blocked = tuple(d for d in self.plan.depends_on(e.step_id) if not self._steps[d].done)
        if blocked:
            self._count(blocked_claims=1)
        out.append(ClaimGranted(e.agent, e.step_id, blocked))
        self._pending.append(e.step_id)

    def _on_success(self, e: AttemptFinished) -> None:
        was_live = e.step_id in self._steps and e.attempt in self._steps[e.step_id].live
        super()._on_success(e)
        if was_live:
            self._held[self.owner[e.step_id]] = None

    def _decide(self, out: list[Action]) -> None:
        still: list[str] = []
        for sid in self._pending:
            if self._ready(sid):
                self._start_run(sid, self.owner[sid], out)
            else:
                still.append(sid)
        self._pending = still
