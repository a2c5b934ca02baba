"""The team simulator: reproducible, writes checked, messages counted by the documented rule."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from synod.core.plan import Plan, load_project
from synod.core.plan.modes import MODES, EngineConfig
from synod.core.teamsim import (
    BOARD,
    Ack,
    SimConfig,
    draw_duration,
    lost_writes,
    simulate_team,
    step_durations,
    team_report,
)
from synod.core.workspace import Applied, FileWrite, VersionVector, Workspace
from synod.errors import ConfigError

TASKS = Path(__file__).resolve().parents[5] / "shared" / "paper" / "tasks"
PROJECTS = sorted(TASKS.glob("*/p*.json"))
needs_paper = pytest.mark.skipif(not PROJECTS, reason=f"no paper projects under {TASKS}")


def make_plan(*steps: tuple[str, list[str]], name: str = "t") -> Plan:
    return Plan.from_steps(
        ({"step_id": s, "depends_on": d, "files": [f"{s}.py"]} for s, d in steps), name=name
    )


TWO = make_plan(("a", []), ("b", []))
FAN = make_plan(*[(f"s{i}", []) for i in range(8)], ("z", ["s0"]))


def test_durations_are_lognormal_with_the_mean_asked_for() -> None:
    draws = [draw_duration(7, f"s{i}", 1, mean=2.0, sigma=0.5) for i in range(4000)]
    assert statistics.fmean(draws) == pytest.approx(2.0, rel=0.03)
    # sigma 0.5: the median is mean * exp(-sigma^2 / 2), the tail is long.
    assert statistics.median(draws) == pytest.approx(2.0 * math.exp(-0.125), rel=0.03)
    assert max(draws) > 2.5 * statistics.median(draws)
    with pytest.raises(ConfigError, match="mean duration"):
        draw_duration(0, "s", 1, mean=0.0)


def test_one_seed_reproduces_a_run_and_another_seed_does_not() -> None:
    plan = load_project(PROJECTS[0]) if PROJECTS else FAN
    a, _ = team_report(plan, 3, "synod", 11)
    b, _ = team_report(plan, 3, "synod", 11)
    c, _ = team_report(plan, 3, "synod", 12)
    assert a.to_json() == b.to_json()
    assert a.makespan_s != c.makespan_s


def test_first_attempts_take_the_same_time_in_every_mode_and_team_size() -> None:
    runs = [simulate_team(FAN, n, m, 3) for m in MODES for n in (1, 2, 4)]
    assert all(r.durations == step_durations(FAN, 3) for r in runs)


def test_estimates_set_the_mean() -> None:
    est = {s: 10.0 for s in FAN.ids}
    d = step_durations(FAN, 1, estimates=est)
    assert statistics.fmean(d.values()) > 4.0  # mean 10 per step, not 1


@needs_paper
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("consistency", ["strong", "eventual"])
def test_every_paper_project_runs_with_no_lost_write_and_one_output_per_step(
    mode: str, consistency: str
) -> None:
    cfg = SimConfig(consistency=consistency)  # type: ignore[arg-type]
    for path in PROJECTS:
        plan = load_project(path)
        run = simulate_team(plan, 4, mode, 5, cfg)  # type: ignore[arg-type]
        assert run.lost == ()
        assert run.outputs_per_step == {s.step_id: len(s.files) for s in plan}
        files = run.workspace.materialise()
        for s in plan:
            won = next(t for t in run.steps if t.step_id == s.step_id)
            for f in s.files:
                assert files[f] == f"{s.step_id}#{won.attempt}"


def test_hedging_cancels_the_loser_and_the_output_appears_once() -> None:
    # Five quick steps give the p95; s5 straggles (attempt 1 takes 50), its hedge takes 1.
    plan = make_plan(*[(f"s{i}", []) for i in range(6)])
    pinned = {(f"s{i}", 1): 1.0 for i in range(5)} | {("s5", 1): 50.0, ("s5", 2): 1.0}
    cfg = SimConfig(engine=EngineConfig(tail_hedge_quantile=None, max_hedges=1))
    run = simulate_team(plan, 2, "synod", 0, cfg, attempt_durations=pinned)
    assert run.stats.hedges == 1
    assert run.stats.cancels == 1
    assert run.makespan < 50.0
    s5 = next(t for t in run.steps if t.step_id == "s5")
    assert s5.attempt == 2
    assert run.outputs_per_step["s5"] == 1
    assert run.workspace.read("s5.py").contents == ("s5#2",)
    assert run.messages["step_cancelled"] == 1
    assert run.lost == ()


def test_claim_races_are_concurrent_writes_the_workspace_detects() -> None:
    for consistency in ("strong", "eventual"):
        cfg = SimConfig(consistency=consistency)  # type: ignore[arg-type]
        run = simulate_team(FAN, 4, "claim", 2, cfg)
        # All four agents read the list at t=0 and claim the same first step.
        assert run.stats.concurrent_claims >= 3
        assert run.concurrent_writes == run.stats.concurrent_claims
        assert run.lost == ()
        if consistency == "eventual":
            discarded = [w for c in run.workspace.conflicts() for w in c.discarded]
            assert len(discarded) == run.stats.concurrent_claims
        assert run.workspace.read(f"{BOARD}/s0").exists


@needs_paper
def test_blocked_claims_and_central_waits_on_a_chain() -> None:
    plan = load_project(TASKS / "amdahl_mathutilities20" / "p05.json")
    claim = simulate_team(plan, 5, "claim", 0)
    central = simulate_team(plan, 5, "central", 0)
    assert claim.stats.blocked_claims > 0
    assert central.stats.waits > 0
    assert simulate_team(plan, 5, "synod", 0).stats.blocked_claims == 0


def test_messages_follow_the_counting_rule() -> None:
    # Two independent steps, two agents, strong mode: per write 1 record + 2 lease records.
    central = simulate_team(TWO, 2, "central", 0).messages
    assert central == {"lease": 4, "result": 2, "step_requested": 2, "task": 2, "write": 2}
    synod = simulate_team(TWO, 2, "synod", 0).messages
    assert synod == central  # too few finished steps for a p95: no hedge
    # Claim: both agents read the list at once and claim 'a'; the loser claims 'b'.
    # 3 board writes + 2 file writes, each with a lease; no StepRequested.
    claim = simulate_team(TWO, 2, "claim", 0).messages
    assert claim == {"lease": 10, "result": 2, "task": 2, "write": 5}
    eventual = simulate_team(TWO, 2, "claim", 0, SimConfig(consistency="eventual")).messages
    assert eventual == {"result": 2, "task": 2, "write": 6}  # + 1 Resolve, no leases


def test_messages_grow_at_most_linearly_with_the_team() -> None:
    plan = load_project(PROJECTS[0]) if PROJECTS else FAN
    for mode in MODES:
        one = sum(simulate_team(plan, 1, mode, 0).messages.values())
        for n in (2, 3, 5):
            assert sum(simulate_team(plan, n, mode, 0).messages.values()) <= n * one


def test_lost_writes_catches_a_write_the_workspace_no_longer_holds() -> None:
    ws = Workspace("eventual")
    first = ws.apply(FileWrite("f.py", "one", "w", VersionVector(), "s", "x1"), 0.0)
    assert isinstance(first, Applied)
    acks = [Ack("x1", "f.py", "one", first.version)]
    assert lost_writes(ws, acks) == ()
    # An acknowledgement the workspace cannot account for: a version it never covered.
    ghost = Ack("x9", "f.py", "ghost", VersionVector.of({"other": 3}))
    lost = lost_writes(ws, [*acks, ghost])
    assert [x.ack.write_id for x in lost] == ["x9"]
    # Same write id, other bytes: the content was changed under the acknowledgement.
    assert [x.ack.write_id for x in lost_writes(ws, [Ack("x1", "f.py", "1", first.version)])] == [
        "x1"
    ]


def test_the_report_has_the_promised_fields_and_consistent_numbers() -> None:
    plan = load_project(PROJECTS[0]) if PROJECTS else FAN
    report, run = team_report(plan, 3, "central", 4)
    doc = json.loads(report.to_json())
    for key in (
        "makespan_s",
        "speedup",
        "amdahl_speedup",
        "graph_bound_s",
        "clairvoyant_makespan_s",
        "messages",
        "concurrent_writes",
        "blocked_claims",
        "tokens",
        "straggler_gap_s",
        "tests_passed",
    ):
        assert key in doc
    assert report.speedup == pytest.approx(report.one_agent_makespan_s / report.makespan_s)
    # Central never hedges, so no run can beat the graph bound of its own durations.
    assert report.makespan_s >= report.graph_bound_s - 1e-9
    assert report.graph_bound_s <= report.clairvoyant_makespan_s + 1e-9
    assert report.total_work_s == pytest.approx(report.one_agent_makespan_s)
    assert report.messages == sum(run.messages.values())
    assert report.tests_passed is None


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown mode"):
        simulate_team(TWO, 2, "mob", 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least one agent"):
        simulate_team(TWO, 0, "central", 0)
    with pytest.raises(ConfigError, match="consistency"):
        SimConfig(consistency="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sigma"):
        SimConfig(sigma=-1)
    with pytest.raises(ConfigError, match="same mode and seed"):
        team_report(TWO, 2, "central", 0, one_agent=simulate_team(TWO, 1, "claim", 0))


def test_the_straggler_gap_is_per_wave_of_n_steps_in_start_order() -> None:
    from synod.core.plan.report import straggler_gap

    times = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 2.0}
    starts = {"a": 0.0, "b": 0.0, "c": 1.0, "d": 3.0}
    # Waves of two: (a, b) gap 3 - 2 = 1; (c, d) gap 0.
    assert straggler_gap(2, times, starts) == pytest.approx(0.5)
    assert straggler_gap(1, times, starts) == 0.0
    assert straggler_gap(4, times, starts) == pytest.approx(3.0 - 2.0)


def test_estimates_come_from_the_project_when_it_has_them() -> None:
    from synod.core.teamsim import load_estimates

    tasks = [{"id": "a", "estimate_s": 4}, {"id": "b"}]
    assert load_estimates({"tasks": tasks}) == {"a": 4.0}
    assert load_estimates({"tasks": [{"id": "a"}]}) is None
    with pytest.raises(ConfigError, match="estimate_s must be > 0"):
        load_estimates({"tasks": [{"id": "a", "estimate_s": 0}]})
    with pytest.raises(ConfigError, match="must be a number"):
        load_estimates({"tasks": [{"id": "a", "estimate_s": "soon"}]})


@needs_paper
def test_the_report_counts_central_waits() -> None:
    plan = load_project(TASKS / "amdahl_svgutils" / "p05.json")
    report, run = team_report(plan, 4, "central", 0)
    assert report.waits == run.stats.waits > 0
    assert team_report(plan, 4, "synod", 0)[0].waits == 0


@pytest.mark.parametrize("mode", MODES)
def test_failed_attempts_write_nothing_and_are_retried(mode: str) -> None:
    cfg = SimConfig(failure_rate=0.4, engine=EngineConfig(max_attempts=20))
    run = simulate_team(FAN, 3, mode, 1, cfg)  # type: ignore[arg-type]
    assert run.stats.retries > 0
    assert run.outputs_per_step == {s: 1 for s in FAN.ids}
    assert run.lost == ()
    # Every attempt reports: successes + failures, hedge losers cancelled aside.
    reported = run.messages["result"]
    assert reported >= len(FAN) + run.stats.retries
