"""The supervisor core: events and time in, actions out; deterministic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.supervisorcore import run

from synod.core.supervisor import (
    DecisionSeen,
    HeartbeatSeen,
    Quarantine,
    Reassign,
    Release,
    Restart,
    StepCompletedSeen,
    StepFailedSeen,
    StepRequestedSeen,
    Supervisor,
    SupervisorConfig,
    TaskEnded,
    VoteSeen,
)


def beats(sup: Supervisor, instance: str, role: str, start: float, n: int, seq0: int = 0) -> float:
    t = start
    for i in range(n):
        assert sup.handle(HeartbeatSeen(instance, role, seq0 + i), t) == []
        assert sup.tick(t) == []
        t += 1.0
    return t - 1.0


# ------------------------------------------------------------ dead instances


def test_a_silent_instance_is_restarted_then_left_to_start() -> None:
    sup = Supervisor(SupervisorConfig(restart_cooldown_s=30.0, start_timeout_s=120.0))
    last = beats(sup, "coder-0", "coder", 0.0, 20)
    assert run(sup, last + 2.0) == []  # a late heartbeat is not a death
    [restart] = [a for a in run(sup, last + 10.0) if isinstance(a, Restart)]
    assert (restart.instance, restart.role, restart.reason) == ("coder-0", "coder", "dead")
    # Still silent, but its start is not over until it beats (test_still_starting.py).
    assert run(sup, last + 120.0) == []
    assert [a.instance for a in run(sup, last + 131.0) if isinstance(a, Restart)] == ["coder-0"]


def test_a_restarted_process_starts_a_fresh_history() -> None:
    sup = Supervisor()
    last = beats(sup, "coder-0", "coder", 0.0, 20, seq0=0)
    assert run(sup, last + 10.0) != []
    # The new process counts from 0 again; the 10 s gap must not widen its rhythm.
    again = beats(sup, "coder-0", "coder", last + 12.0, 20, seq0=0)
    assert sup.detector.phi("coder-0", again + 1.0) < 1.0
    assert run(sup, again + 8.0) != []  # as fast to suspect as before the restart


def test_a_graceful_stop_is_not_a_death() -> None:
    sup = Supervisor()
    last = beats(sup, "coder-1", "coder", 0.0, 10)
    sup.handle(HeartbeatSeen("coder-1", "coder", 10, state="stopping"), last + 1.0)
    assert run(sup, last + 100.0) == []


def test_an_instance_gone_for_long_is_forgotten_not_restarted_for_ever() -> None:
    sup = Supervisor(SupervisorConfig(forget_after_s=60.0, restart_cooldown_s=10.0))
    last = beats(sup, "coder-2", "coder", 0.0, 10)
    assert run(sup, last + 9.0) != []
    run(sup, last + 60.0)  # restarted, never heard again
    assert sup.tick(last + 61.0) == []
    assert "coder-2" not in sup.instances


# ------------------------------------------------------------ stuck steps


def request(attempt: int, at: float = 0.0, variant: str = "") -> StepRequestedSeen:
    return StepRequestedSeen("t1", "s1", attempt, 30.0, at, prompt_variant=variant)


def test_a_step_with_no_outcome_past_its_lease_is_reassigned_once() -> None:
    sup = Supervisor(SupervisorConfig(lease_grace_s=5.0))
    sup.handle(request(0), 0.0)
    assert sup.tick(35.0) == []
    [reassign] = sup.tick(35.1)
    assert isinstance(reassign, Reassign)
    assert (reassign.step_id, reassign.after_attempt, reassign.reason) == ("s1", 0, "stuck")
    assert sup.tick(100.0) == []


def test_a_step_with_an_outcome_is_not_stuck() -> None:
    sup = Supervisor()
    sup.handle(request(0), 0.0)
    sup.handle(StepCompletedSeen("t1", "s1", 0, "coder-0", "out-a"), 1.0)
    assert sup.tick(1000.0) == []


# ------------------------------------------------------------ loops


def test_the_same_output_twice_is_a_loop_reassigned_with_other_parameters() -> None:
    config = SupervisorConfig(models=("m-a", "m-b"), temperatures=(0.9,), prompt_variants=("x",))
    sup = Supervisor(config)
    sup.handle(request(0), 0.0)
    assert sup.handle(StepCompletedSeen("t1", "s1", 0, "coder-0", "same"), 1.0) == []
    sup.handle(request(1, variant="revise-2"), 2.0)
    [action] = sup.handle(StepCompletedSeen("t1", "s1", 1, "coder-1", "same"), 3.0)
    assert action == Reassign("t1", "s1", 1, "m-b", 0.9, "revise-2+x", "loop")
    # The same evidence again (a redelivery) asks for nothing more.
    assert sup.handle(StepCompletedSeen("t1", "s1", 1, "coder-1", "same"), 3.5) == []


def test_a_second_reassignment_moves_off_the_model_that_failed() -> None:
    config = SupervisorConfig(models=("", "m-b", "m-c"), max_reassignments=3)
    sup = Supervisor(config)
    sup.handle(StepRequestedSeen("t1", "s1", 0, 30.0, 0.0), 0.0)
    [first] = run(sup, 100.0)
    assert first.model == "m-b"
    sup.handle(StepRequestedSeen("t1", "s1", 1, 30.0, 100.0, model="m-b"), 100.0)
    [second] = run(sup, 200.0)
    assert (second.after_attempt, second.model) == (1, "m-c")
    assert second.temperature != first.temperature


def test_different_outputs_are_not_a_loop() -> None:
    sup = Supervisor()
    sup.handle(StepCompletedSeen("t1", "s1", 0, "coder-0", "one"), 1.0)
    assert sup.handle(StepCompletedSeen("t1", "s1", 1, "coder-0", "two"), 2.0) == []


def test_the_same_provider_error_twice_is_weather_not_a_loop() -> None:
    sup = Supervisor()
    for attempt in (0, 1):
        failed = StepFailedSeen("t1", "s1", attempt, "c", "transient/rate_limited", False)
        assert sup.handle(failed, float(attempt)) == []


def test_the_same_invalid_output_twice_is_a_loop() -> None:
    sup = Supervisor()
    sup.handle(StepFailedSeen("t1", "s1", 0, "c", "permanent/invalid_output"), 0.0)
    [action] = sup.handle(StepFailedSeen("t1", "s1", 1, "c", "permanent/invalid_output"), 1.0)
    assert isinstance(action, Reassign)
    assert action.reason == "loop"


def test_an_exhausted_attempt_budget_is_reassigned_and_reassignments_are_bounded() -> None:
    sup = Supervisor(SupervisorConfig(attempt_budget=3, max_reassignments=1))
    actions = []
    for attempt in range(6):
        sup.handle(request(attempt), float(attempt))
        failed = StepFailedSeen("t1", "s1", attempt, "c", f"transient/x{attempt}", False)
        actions += sup.handle(failed, float(attempt) + 0.5)
    reassigned = [(a.after_attempt, a.reason) for a in actions if isinstance(a, Reassign)]
    assert reassigned == [(2, "attempt_budget")]


def test_a_task_that_ended_is_forgotten() -> None:
    sup = Supervisor()
    sup.handle(request(0), 0.0)
    sup.handle(TaskEnded("t1"), 1.0)
    assert sup.tick(10_000.0) == []


# ------------------------------------------------------------ hallucinators


def alive_reviewers(sup: Supervisor, n: int, now: float) -> None:
    for i in range(n):
        sup.handle(HeartbeatSeen(f"reviewer-{i}", "reviewer", 0), now)


def ballot(sup: Supervisor, i: int, wrong: str, now: float, outcome: str = "answer") -> list:
    proposal = f"t{i}/answer"
    for r in range(4):
        voter = f"reviewer-{r}"
        sup.handle(VoteSeen(proposal, voter, "rejected" if voter == wrong else outcome), now)
    return sup.handle(DecisionSeen(f"t{i}", proposal, outcome), now)


def test_a_reviewer_outvoted_k_times_is_quarantined_then_released_when_served_and_alive() -> None:
    config = SupervisorConfig(strikes_to_quarantine=2, strike_window=3, quarantine_s=100.0)
    sup = Supervisor(config)
    alive_reviewers(sup, 4, 0.0)
    assert ballot(sup, 1, "reviewer-3", 1.0) == []
    [q] = ballot(sup, 2, "reviewer-3", 2.0)
    assert q == Quarantine("reviewer-3", "reviewer", 102.0, "wrong_votes", 2)
    assert sup.quarantined() == {"reviewer-3": 102.0}
    # Served but silent: not healthy yet.
    assert [a for a in run(sup, 150.0) if isinstance(a, Release)] == []
    for i in range(5):
        sup.handle(HeartbeatSeen("reviewer-3", "reviewer", 1 + i), 150.0 + i)
    assert [a for a in run(sup, 155.0) if isinstance(a, Release)] == [
        Release("reviewer-3", "reviewer", "served")
    ]
    assert sup.quarantined() == {}


def test_a_vote_that_arrives_after_its_decision_is_judged_too() -> None:
    config = SupervisorConfig(strikes_to_quarantine=1, strike_window=1)
    sup = Supervisor(config)
    alive_reviewers(sup, 4, 0.0)
    assert sup.handle(DecisionSeen("t1", "t1/answer", "answer"), 1.0) == []
    [q] = sup.handle(VoteSeen("t1/answer", "reviewer-2", "rejected"), 1.5)
    assert (q.instance, q.reason) == ("reviewer-2", "wrong_votes")
    assert sup.handle(VoteSeen("t1/answer", "reviewer-1", "answer"), 1.6) == []


def test_a_repeat_offender_stays_out_twice_as_long() -> None:
    config = SupervisorConfig(strikes_to_quarantine=1, strike_window=1, quarantine_s=10.0)
    sup = Supervisor(config)
    alive_reviewers(sup, 4, 0.0)
    [first] = ballot(sup, 1, "reviewer-0", 0.0)
    assert first.until == 10.0
    for i in range(4):
        for r in range(4):
            sup.handle(HeartbeatSeen(f"reviewer-{r}", "reviewer", 1 + i), 8.0 + i)
    assert [type(a) for a in sup.tick(11.0)] == [Release]
    [second] = ballot(sup, 2, "reviewer-0", 11.0)
    assert second.until == 31.0


def test_no_quarantine_that_would_leave_too_few_reviewers() -> None:
    config = SupervisorConfig(strikes_to_quarantine=1, strike_window=1, min_reviewers=3)
    sup = Supervisor(config)
    alive_reviewers(sup, 3, 0.0)  # only two others would be left
    assert ballot(sup, 1, "reviewer-0", 0.0) == []


def test_a_withheld_quarantine_is_tried_again_once_enough_reviewers_are_alive() -> None:
    """Its second strike came while one honest reviewer was not yet heard: the
    quarantine waits for the tick at which three others are alive, not for its
    next ballot, and lapses if its record improves first."""
    config = SupervisorConfig(strikes_to_quarantine=2, strike_window=3, min_reviewers=3)
    sup = Supervisor(config)
    alive_reviewers(sup, 3, 0.0)  # reviewer-3 not heard yet
    assert ballot(sup, 1, "reviewer-0", 1.0) == []
    assert ballot(sup, 2, "reviewer-0", 2.0) == []
    assert sup.withheld == {"reviewer-0": "wrong_votes"}
    assert [a for a in sup.tick(2.5) if isinstance(a, Quarantine)] == []
    for r in range(4):
        sup.handle(HeartbeatSeen(f"reviewer-{r}", "reviewer", 1), 3.0)
    [q] = [a for a in sup.tick(3.5) if isinstance(a, Quarantine)]
    assert (q.instance, q.reason, q.strikes) == ("reviewer-0", "wrong_votes", 2)
    assert sup.withheld == {}
    assert [a for a in sup.tick(4.5) if isinstance(a, Quarantine)] == []  # once

    better = Supervisor(config)
    alive_reviewers(better, 3, 0.0)
    ballot(better, 1, "reviewer-0", 1.0)
    ballot(better, 2, "reviewer-0", 2.0)
    ballot(better, 3, "nobody", 2.2)
    ballot(better, 4, "nobody", 2.4)  # strikes now [wrong, right, right]
    for r in range(4):
        better.handle(HeartbeatSeen(f"reviewer-{r}", "reviewer", 1), 3.0)
    assert [a for a in better.tick(3.5) if isinstance(a, Quarantine)] == []
    assert better.withheld == {}


def test_no_quorum_judges_nobody_and_rejected_candidates_count_against_their_producer() -> None:
    config = SupervisorConfig(strikes_to_quarantine=2, strike_window=2)
    sup = Supervisor(config)
    sup.handle(HeartbeatSeen("coder-1", "coder", 0), 0.0)
    assert sup.handle(DecisionSeen("t1", "t1/answer", "no_quorum", ("coder-1",)), 0.0) == []
    assert sup.handle(DecisionSeen("t1", "t1/answer-2", "rejected", ("coder-1",)), 1.0) == []
    [q] = sup.handle(DecisionSeen("t2", "t2/answer", "rejected", ("coder-1",)), 2.0)
    assert (q.instance, q.role, q.reason) == ("coder-1", "coder", "rejected_candidates")


def test_accepted_candidates_count_for_their_producer() -> None:
    config = SupervisorConfig(strikes_to_quarantine=2, strike_window=3)
    sup = Supervisor(config)
    outcomes = ["rejected", "answer", "answer", "rejected", "answer", "answer", "rejected"]
    actions = []
    for i, outcome in enumerate(outcomes):
        actions += sup.handle(DecisionSeen(f"t{i}", f"t{i}/answer", outcome, ("coder-1",)), i)
    assert actions == []  # never two rejections within three judged ballots
    [q] = sup.handle(DecisionSeen("t9", "t9/answer", "rejected", ("coder-1",)), 9.0)
    assert q.strikes == 2


def test_bad_config_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="loop_repeats"):
        SupervisorConfig(loop_repeats=1)
    with pytest.raises(ValueError, match="strikes"):
        SupervisorConfig(strikes_to_quarantine=5, strike_window=2)


# ------------------------------------------------------------ properties


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # instance
            st.floats(0.0, 5.0),  # gap before the event
            st.sampled_from(["beat", "tick", "wrong", "right"]),
        ),
        max_size=80,
    )
)
def test_invariants_hold_for_any_event_sequence(events: list) -> None:
    """Restarts respect the cooldown, quarantines never leave too few reviewers,
    and every quarantine is released at most once, never before its time."""
    config = SupervisorConfig(
        strikes_to_quarantine=2, strike_window=3, quarantine_s=5.0, restart_cooldown_s=7.0
    )
    sup = Supervisor(config)
    now, seqs = 0.0, [0] * 4
    last_restart: dict[str, float] = {}
    open_until: dict[str, float] = {}
    for n, (who, gap, kind) in enumerate(events):
        now += gap
        name = f"reviewer-{who}"
        actions: list = []
        if kind == "beat":
            actions = sup.handle(HeartbeatSeen(name, "reviewer", seqs[who]), now)
            seqs[who] += 1
        elif kind == "tick":
            actions = sup.tick(now)
        else:
            proposal = f"t{n}/answer"
            sup.handle(VoteSeen(proposal, name, "rejected" if kind == "wrong" else "answer"), now)
            actions = sup.handle(DecisionSeen(f"t{n}", proposal, "answer"), now)
        for a in actions:
            if isinstance(a, Restart):
                assert now - last_restart.get(a.instance, -1e9) >= config.restart_cooldown_s
                last_restart[a.instance] = now
            elif isinstance(a, Quarantine):
                assert a.instance not in open_until
                open_until[a.instance] = a.until
                # Four reviewers, at least three kept: never two out at once.
                assert len(sup.quarantined()) <= 4 - config.min_reviewers
            elif isinstance(a, Release):
                assert now >= open_until.pop(a.instance)
