"""The plan-run state machine: dispatch order, hedging, exactly-once, retries, failure."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.plan import (
    Cancel,
    Dispatch,
    Event,
    Hedge,
    Ignored,
    Output,
    Plan,
    PlanDone,
    PlanFailed,
    Scheduler,
    SchedulerConfig,
    StepDispatched,
    StepFailed,
    StepFinished,
    Tick,
)
from synod.errors import ConfigError


def make_plan(*steps: tuple[str, list[str]]) -> Plan:
    return Plan.from_steps({"step_id": s, "depends_on": d} for s, d in steps)


def cfg(**kw: Any) -> SchedulerConfig:
    return SchedulerConfig(**{"max_concurrency": 2, "hedge": False, **kw})


CHAIN_AND_TWO = make_plan(("x", []), ("y", []), ("a", []), ("b", ["a"]), ("c", ["b"]))


def test_ready_steps_go_critical_path_first_up_to_the_limit() -> None:
    s = Scheduler(CHAIN_AND_TWO, cfg())
    assert s.handle(Tick(0)) == (Dispatch("a", 1), Dispatch("x", 1))
    assert s.status("b") == "waiting"
    assert s.status("y") == "ready"
    out = s.handle_batch([StepFinished("a", 1, 1.0), StepFinished("x", 1, 1.0)])
    assert out == (Dispatch("b", 1), Dispatch("y", 1))
    assert s.live_attempts() == (("y", 1), ("b", 1))


def test_plan_order_is_the_fifo_baseline() -> None:
    s = Scheduler(CHAIN_AND_TWO, cfg(order="plan_order"))
    assert s.handle(Tick(0)) == (Dispatch("x", 1), Dispatch("y", 1))


def test_estimates_change_the_critical_path() -> None:
    est = {"x": 10.0, "y": 1.0, "a": 1.0, "b": 1.0, "c": 1.0}
    s = Scheduler(CHAIN_AND_TWO, cfg(max_concurrency=1), est)
    assert s.handle(Tick(0)) == (Dispatch("x", 1),)


def test_a_run_to_the_end() -> None:
    p = make_plan(("a", []), ("b", ["a"]))
    s = Scheduler(p, cfg())
    assert s.handle(Tick(10.0)) == (Dispatch("a", 1),)
    assert s.handle(StepDispatched("a", 1, "w1", 10.5)) == ()
    assert s.handle(StepFinished("a", 1, 12.0)) == (Dispatch("b", 1),)
    assert s.handle(StepFinished("b", 1, 13.0)) == (PlanDone(13.0, 3.0),)
    assert s.finished_durations() == (1.5, 1.0)
    assert s.outcome == PlanDone(13.0, 3.0)
    late = StepFinished("b", 1, 14.0)
    assert s.handle(late) == (Ignored(late, "plan_over"),)


# A slow step `late` starts once `s1` finishes; five finished steps set the threshold.
HEDGE_PLAN = make_plan(*[(f"s{i}", []) for i in range(1, 6)], ("late", ["s1"]), ("end", ["late"]))


def started_hedge_run() -> Scheduler:
    s = Scheduler(HEDGE_PLAN, cfg(max_concurrency=10, hedge=True, hedge_min_samples=5))
    assert s.handle(Tick(0)) == tuple(Dispatch(f"s{i}", 1) for i in range(1, 6))
    assert s.hedge_threshold() is None
    out = s.handle_batch([StepFinished(f"s{i}", 1, 1.0) for i in range(1, 6)])
    assert out == (Dispatch("late", 1),)
    assert s.handle(StepDispatched("late", 1, "w-late", 1.0)) == ()
    assert s.hedge_threshold() == 1.0
    return s


def test_a_step_running_past_the_p95_is_hedged_once() -> None:
    s = started_hedge_run()
    assert s.next_deadline() == 2.0
    assert s.handle(Tick(1.99)) == ()
    assert s.handle(Tick(2.0)) == (Hedge("late", 2, straggler=1),)
    assert s.next_deadline() is None  # max_hedges = 1
    assert s.handle(Tick(9.0)) == ()
    assert s.stats.hedged == 1


def test_the_first_result_wins_the_loser_is_cancelled_and_later_results_ignored() -> None:
    s = started_hedge_run()
    s.handle(Tick(2.0))
    s.handle(StepDispatched("late", 2, "w-hedge", 2.0))
    out = s.handle(StepFinished("late", 2, 2.5))
    assert out == (Cancel("late", 1, "w-late"), Dispatch("end", 1))
    loser, redelivered = StepFinished("late", 1, 3.0), StepFinished("late", 2, 3.1)
    assert s.handle(loser) == (Ignored(loser, "already_done"),)
    assert s.handle(redelivered) == (Ignored(redelivered, "already_done"),)
    failed_loser = StepFailed("late", 1, 3.2)
    assert s.handle(failed_loser) == (Ignored(failed_loser, "already_done"),)
    assert s.handle(StepFinished("end", 1, 4.0)) == (PlanDone(4.0, 4.0),)
    assert s.stats.duplicates == 3
    assert s.stats.cancelled == 1
    assert s.stats.dispatched == 7  # every step once; the hedge is counted apart


def test_a_failed_attempt_does_not_retry_while_its_hedge_runs() -> None:
    s = started_hedge_run()
    s.handle(Tick(2.0))
    assert s.handle(StepFailed("late", 1, 2.2, "transient", "crash")) == ()
    assert s.live_attempts() == (("late", 2),)
    assert s.handle(StepFinished("late", 2, 3.0)) == (Dispatch("end", 1),)
    assert s.stats.retried == 0


def test_ready_steps_take_capacity_before_hedges() -> None:
    p = make_plan(("a", []), ("b", []), ("c", []))
    s = Scheduler(p, cfg(hedge=True, hedge_min_samples=1, hedge_quantile=1.0))
    assert s.handle(Tick(0)) == (Dispatch("a", 1), Dispatch("b", 1))
    # b is overdue (1.0 >= max duration 1.0) but c is ready and there is one slot.
    assert s.handle(StepFinished("a", 1, 1.0)) == (Dispatch("c", 1),)
    assert s.next_deadline() == 2.0  # c's; b is overdue and waits for a slot
    assert s.handle(StepFinished("c", 1, 1.5)) == (Hedge("b", 2, straggler=1),)


def test_no_hedge_before_enough_samples() -> None:
    p = make_plan(("a", []), ("b", []))
    s = Scheduler(p, cfg(max_concurrency=3, hedge=True, hedge_min_samples=2))
    s.handle(Tick(0))
    assert s.handle(StepFinished("a", 1, 1.0)) == ()
    assert s.next_deadline() is None
    assert s.handle(Tick(100.0)) == ()


def test_transient_failures_are_retried_then_fail_the_plan() -> None:
    p = make_plan(("a", []), ("b", []))
    s = Scheduler(p, cfg(max_attempts=2))
    s.handle(Tick(0))
    assert s.handle(StepFailed("a", 1, 1.0, "transient", "timeout")) == (Dispatch("a", 2),)
    assert s.stats.retried == 1
    assert s.handle(StepDispatched("b", 1, "wb", 1.0)) == ()
    out = s.handle(StepFailed("a", 2, 2.0, "transient", "timeout"))
    assert out == (
        Cancel("b", 1, "wb"),
        PlanFailed("a", "transient: 2 attempts failed, last: timeout", 2.0),
    )
    assert s.status("a") == "failed"
    assert s.live_attempts() == ()


def test_an_unacceptable_result_counts_as_a_failed_attempt() -> None:
    p = make_plan(("a", []))
    s = Scheduler(p, cfg())
    s.handle(Tick(0))
    assert s.handle(StepFinished("a", 1, 1.0, ok=False)) == (Dispatch("a", 2),)


@pytest.mark.parametrize("error_class", ["permanent", "budget"])
def test_permanent_and_budget_failures_are_not_retried(error_class: Any) -> None:
    p = make_plan(("a", []), ("b", []))
    s = Scheduler(p, cfg())
    s.handle(Tick(0))
    out = s.handle(StepFailed("a", 1, 1.0, error_class, "no"))
    assert out == (Cancel("b", 1, None), PlanFailed("a", f"{error_class}: no", 1.0))
    tick = Tick(2.0)
    assert s.handle(tick) == (Ignored(tick, "plan_over"),)


def test_events_that_change_nothing_say_why() -> None:
    p = make_plan(("a", []), ("b", ["a"]))
    s = Scheduler(p, cfg())
    s.handle(Tick(0))
    ghost, wrong, early = StepFinished("zz", 1, 1), StepFinished("a", 7, 1), StepFinished("b", 1, 1)
    first, again = StepDispatched("a", 1, "w1", 0.5), StepDispatched("a", 1, "w2", 0.6)
    assert s.handle(ghost) == (Ignored(ghost, "unknown_step"),)
    assert s.handle(wrong) == (Ignored(wrong, "not_running"),)
    assert s.handle(early) == (Ignored(early, "not_running"),)
    assert s.handle(first) == ()
    assert s.handle(again) == (Ignored(again, "duplicate"),)
    assert s.stats.ignored == 4
    assert s.stats.duplicates == 0


def test_time_never_runs_backwards() -> None:
    s = Scheduler(make_plan(("a", []), ("b", [])), cfg())
    s.handle(Tick(5.0))
    s.handle(StepFinished("a", 1, 3.0))  # a late clock: taken as 5.0
    assert s.finished_durations() == (0.0,)
    assert s.now == 5.0


def test_an_empty_batch_does_nothing() -> None:
    s = Scheduler(make_plan(("a", [])), cfg())
    assert s.handle_batch([]) == ()
    assert s.status("a") == "ready"


@pytest.mark.parametrize(
    "bad",
    [
        {"max_concurrency": 0},
        {"hedge_quantile": 0.0},
        {"hedge_quantile": 1.5},
        {"hedge_min_samples": 0},
        {"max_hedges": -1},
        {"max_attempts": 0},
    ],
)
def test_bad_configs_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SchedulerConfig(**bad)


def test_the_p95_is_a_nearest_rank_quantile() -> None:
    p = make_plan(*[(f"s{i}", []) for i in range(21)])
    s = Scheduler(p, cfg(max_concurrency=21, hedge=True, hedge_min_samples=20))
    s.handle(Tick(0))
    for i in range(20):
        s.handle(StepFinished(f"s{i}", 1, float(i + 1)))
    # 20 samples 1..20: ceil(0.95 * 20) = 19th smallest.
    assert s.hedge_threshold() == 19.0


# ---------------------------------------------------------------- property


@st.composite
def dags(draw: st.DrawFn) -> Plan:
    n = draw(st.integers(1, 10))
    steps: list[dict[str, Any]] = []
    for i in range(n):
        deps = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        steps.append({"step_id": f"s{i}", "depends_on": [f"s{j}" for j in sorted(deps)]})
    return Plan.from_steps(draw(st.permutations(steps)))


configs = st.builds(
    SchedulerConfig,
    max_concurrency=st.integers(1, 4),
    order=st.sampled_from(["critical_path", "plan_order"]),
    hedge=st.booleans(),
    hedge_quantile=st.sampled_from([0.5, 0.95, 1.0]),
    hedge_min_samples=st.integers(1, 3),
    max_hedges=st.integers(0, 2),
    max_attempts=st.just(10_000),
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(dags(), configs, st.data())
def test_any_interleaving_completes_each_step_exactly_once(
    plan: Plan, config: SchedulerConfig, data: st.DataObject
) -> None:
    s = Scheduler(plan, config)
    live: set[tuple[str, int]] = set()
    done: set[str] = set()
    finished_ever: list[tuple[str, int]] = []
    history: list[tuple[list[Event], tuple[Output, ...]]] = []
    ends: list[Output] = []

    def feed(batch: list[Event]) -> None:
        accepted: dict[StepFinished | StepFailed, bool] = {}
        for ev in batch:
            if isinstance(ev, StepFinished | StepFailed):
                key = (ev.step_id, ev.attempt)
                accepted[ev] = key in live and ev.step_id not in done
                if accepted[ev]:
                    live.discard(key)
                    if isinstance(ev, StepFinished):
                        done.add(ev.step_id)
                        finished_ever.append(key)
        out = s.handle_batch(batch)
        history.append((batch, out))
        ignored = {o.event: o.reason for o in out if isinstance(o, Ignored)}
        for ev, ok in accepted.items():
            assert (ev not in ignored) == ok, (ev, ignored)
            if not ok:
                want = "already_done" if ev.step_id in done else "not_running"
                assert ignored[ev] == want
        for o in out:
            if isinstance(o, Dispatch | Hedge):
                assert all(d in done for d in plan.depends_on(o.step_id))
                assert o.step_id not in done
                assert (o.step_id, o.attempt) not in live
                if isinstance(o, Hedge):
                    assert (o.step_id, o.straggler) in live
                live.add((o.step_id, o.attempt))
            elif isinstance(o, Cancel):
                live.remove((o.step_id, o.attempt))
            elif isinstance(o, PlanDone | PlanFailed):
                ends.append(o)
        assert len(live) <= config.max_concurrency
        assert set(s.live_attempts()) == live

    now = 0.0
    feed([Tick(now)])
    for _ in range(data.draw(st.integers(0, 60), label="steps")):
        if s.finished:
            break
        now += data.draw(st.sampled_from([0.0, 0.5, 1.0, 3.0]), label="dt")
        options = ["tick"] + (["finish", "fail"] if live else [])
        options += ["redeliver"] if finished_ever else []
        action = data.draw(st.sampled_from(options), label="action")
        if action == "finish":
            sid, att = data.draw(st.sampled_from(sorted(live)), label="which")
            feed([StepFinished(sid, att, now)])
        elif action == "fail":
            sid, att = data.draw(st.sampled_from(sorted(live)), label="which")
            feed([StepFailed(sid, att, now, "transient", "x")])
        elif action == "redeliver":
            sid, att = data.draw(st.sampled_from(finished_ever), label="again")
            feed([StepFinished(sid, att, now)])
        else:
            feed([Tick(now)])
    while not s.finished:
        now += 1.0
        feed([StepFinished(*min(live), now)])

    assert ends == [PlanDone(now, now)]
    assert done == set(plan.ids)
    assert sorted(sid for sid, _ in finished_ever) == sorted(plan.ids)

    replay = Scheduler(plan, config)
    assert [replay.handle_batch(batch) for batch, _ in history] == [out for _, out in history]


# ---------------------------------------------------------------- the tail rule


def tail_run(**kw: Any) -> Scheduler:
    """s1..s5 take 0.5..2.5 and end together at 2.5; then 'late' and 'late2' start, the last two."""
    plan = make_plan(*[(f"s{i}", []) for i in range(1, 6)], ("late", []), ("late2", []))
    s = Scheduler(plan, cfg(max_concurrency=5, hedge=True, hedge_min_samples=5, **kw))
    assert s.handle(Tick(0)) == tuple(Dispatch(f"s{i}", 1) for i in range(1, 6))
    out = s.handle_batch([StepFinished(f"s{i}", 1, 0.5 * i) for i in range(1, 6)])
    assert out == (Dispatch("late", 1), Dispatch("late2", 1))
    return s


def test_without_the_tail_rule_the_p95_holds_in_the_tail() -> None:
    s = tail_run()
    assert s.in_tail()
    assert s.hedge_threshold() == 2.5
    assert s.next_deadline() == 5.0
    assert s.handle(Tick(4.9)) == ()


def test_in_the_tail_the_lower_quantile_fires_and_copies_go_out_together() -> None:
    s = tail_run(tail_hedge_quantile=0.25, max_hedges=2)
    assert s.hedge_threshold() == 2.5  # the p95 itself is unchanged
    assert s.next_deadline() == 3.5  # started at 2.5, p25 of 0.5..2.5 is 1.0 (nearest rank)
    assert s.handle(Tick(3.4)) == ()
    # Three free slots: both copies of 'late' (first by rank) go out together, then one of 'late2'.
    assert s.handle(Tick(3.5)) == (
        Hedge("late", 2, straggler=1),
        Hedge("late", 3, straggler=1),
        Hedge("late2", 2, straggler=1),
    )
    assert s.handle(Tick(9.0)) == ()  # no slot left


def test_the_tail_rule_waits_while_a_step_is_still_waiting() -> None:
    plan = make_plan(*[(f"s{i}", []) for i in range(1, 6)], ("a", []), ("b", ["a"]))
    config = cfg(max_concurrency=5, hedge=True, hedge_min_samples=4, tail_hedge_quantile=0.25)
    s = Scheduler(plan, config)
    assert s.handle(Tick(0)) == (Dispatch("a", 1), *(Dispatch(f"s{i}", 1) for i in range(1, 5)))
    out = s.handle_batch([StepFinished(f"s{i}", 1, 0.5 * i) for i in range(1, 5)])
    assert out == (Dispatch("s5", 1), Hedge("a", 2, straggler=1))  # a ran the p95, 2.0
    assert not s.in_tail()  # b waits for a
    assert s.next_deadline() == 4.0  # s5 started at 2.0: the p95 rules, not the p25
    assert s.handle(Tick(3.0)) == ()


def test_a_bad_tail_quantile_is_rejected() -> None:
    with pytest.raises(ConfigError, match="tail_hedge_quantile"):
        SchedulerConfig(tail_hedge_quantile=0.0)
