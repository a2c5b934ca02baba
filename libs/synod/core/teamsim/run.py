"""A team of n agents running a plan in virtual time: any mode, seeded, with a real workspace.

`simulate_team(plan, n, mode, seed)` drives one of the engines (central and
claim: `synod.core.plan.modes`; synod: `synod.core.teamsim.synod`, the
planner's task core) with a discrete-event loop. Everything random comes
from the seed, so one seed reproduces a run exactly:

- Step durations are lognormal with sigma 0.5 (heavy-tailed, as LLM calls
  are) and the step's mean: its estimate if the project gives one, else 1.0.
  Attempt k of step s draws from its own stream, `Random("seed/s/k")`, so the
  first attempts are the same whatever the mode or the team size (that is
  what makes "speedup against one agent" and the bounds compare like with
  like), and a hedge gets an independent draw.
- With `failure_rate` > 0 an attempt may fail (transient, seeded per
  attempt): it writes nothing and the engine retries it.
- Every file a step writes goes through `synod.core.workspace.Workspace` when the
  attempt finishes, based on the version its agent read when it started. In
  `strong` consistency the writer takes the file's lease first and gives it
  back after; in `eventual` consistency concurrent writes become siblings,
  and the sim resolves them at once by keeping the first in log order (the
  discarded version stays on record).
- In claim mode each claim is also a write to the shared list, one file per
  step (`.synod/board/<step>`, as a compacted topic keyed by step would hold
  it), based on what the agent read; the agent reads the list, and its claim
  lands `claim_latency_s` later. Two claims of one step are therefore two
  writes of one file, and the workspace must detect the second: a stale base
  in `strong` mode, siblings in `eventual` mode. The sim checks that the
  workspace and the engine agree on every such race.

After the run, `lost_writes` compares the final workspace with every write
it acknowledged: each must still be covered by its file's final version, or
be on record as discarded by a resolution. A run with a lost write is
reported, never silently accepted.

Messages are counted as the Kafka records each mode's protocol would
produce (consumed records are not counted; heartbeats are not, they depend
on wall time and not on the run):

    every mode      1 TaskSubmitted + 1 TaskCompleted
                    1 result (StepCompleted/StepFailed) per attempt that reports
                    1 FileWrite (or Resolve) per workspace write, accepted or not
                    strong consistency: + 1 lease acquire + 1 lease release per write
    central         1 StepRequested per Run (the assignment, sent to the agent)
    claim           the claim is its board write (counted there); Runs send nothing,
                    the agent starts work itself
    synod           1 StepRequested per Run and per Hedge, 1 StepCancelled per Cancel

Tokens are a stand-in for the cost of LLM time: `tokens_per_s` times the time
every attempt ran, cancelled ones up to their cancel.
"""

from __future__ import annotations

from collections.abc import Mapping

from synod.core.plan.dag import Plan
from synod.core.plan.modes import (
    MODES,
    Mode,
)
from synod.core.plan.report import RunReport, build_report
from synod.core.teamsim.loop import _Sim
from synod.core.teamsim.model import (
    SimConfig,
    TeamRun,
    step_durations,
)
from synod.core.teamsim.synod import make_engine
from synod.core.workspace import (
    Workspace,
)
from synod.errors import ConfigError


def simulate_team(
    plan: Plan,
    n: int,
    mode: Mode,
    seed: int,
    config: SimConfig | None = None,
    *,
    estimates: Mapping[str, float] | None = None,
    attempt_durations: Mapping[tuple[str, int], float] | None = None,
) -> TeamRun:
    """Run `plan` with `n` agents in `mode`; `attempt_durations` pins chosen attempts (tests)."""
    cfg = config or SimConfig()
    if mode not in MODES:
        raise ConfigError(f"unknown mode '{mode}'; expected one of {', '.join(MODES)}")
    if n < 1:
        raise ConfigError(f"a team needs at least one agent, got {n}")
    agents = tuple(f"agent-{i}" for i in range(n))
    est = dict(estimates or {})
    engine = make_engine(mode, plan, agents, cfg.engine, est or None, cfg.consistency)
    ws = Workspace(cfg.consistency)
    pinned = attempt_durations or {}
    durations = step_durations(plan, seed, cfg.sigma, est)
    return _Sim(plan, agents, mode, seed, cfg, engine, ws, est, pinned, durations).run()


def team_report(
    plan: Plan,
    n: int,
    mode: Mode,
    seed: int,
    config: SimConfig | None = None,
    *,
    estimates: Mapping[str, float] | None = None,
    project: str = "",
    one_agent: TeamRun | None = None,
) -> tuple[RunReport, TeamRun]:
    """Simulate `plan` with n agents and with one (same mode, same seed) and report the run.

    Pass `one_agent` to reuse a one-agent run of the same mode and seed.
    """
    run = simulate_team(plan, n, mode, seed, config, estimates=estimates)
    if n == 1:
        base = run
    elif one_agent is not None:
        if (one_agent.mode, one_agent.n, one_agent.seed) != (mode, 1, seed):
            raise ConfigError("one_agent must be a one-agent run of the same mode and seed")
        base = one_agent
    else:
        base = simulate_team(plan, 1, mode, seed, config, estimates=estimates)
    report = build_report(
        plan,
        mode=mode,
        n=n,
        seed=seed,
        makespan_s=run.makespan,
        one_agent_makespan_s=base.makespan,
        durations=run.durations,
        step_times={s.step_id: s.finish - s.start for s in run.steps},
        step_starts={s.step_id: s.start for s in run.steps},
        messages_by_kind=run.messages,
        tokens=run.tokens,
        concurrent_writes=run.concurrent_writes,
        lost_writes=len(run.lost),
        blocked_claims=run.stats.blocked_claims,
        concurrent_claims=run.stats.concurrent_claims,
        hedges=run.stats.hedges,
        cancels=run.stats.cancels,
        project=project,
        waits=run.stats.waits,
    )
    return report, run
