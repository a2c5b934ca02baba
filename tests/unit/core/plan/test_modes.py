"""The paper's two team modes as engines on hand-made plans (synod: tests/unit/core/teamsim)."""

from __future__ import annotations

import pytest

from synod.core.plan import Plan
from synod.core.plan.modes import (
    AttemptFailed,
    AttemptFinished,
    CentralEngine,
    ClaimAttempted,
    ClaimEngine,
    ClaimGranted,
    ClaimLost,
    Run,
    TeamDone,
    TeamFailed,
    Tick,
    list_order,
)
from synod.errors import ConfigError


def make_plan(*steps: tuple[str, list[str]], priorities: dict[str, int] | None = None) -> Plan:
    pr = priorities or {}
    return Plan.from_steps(
        {"step_id": s, "depends_on": d, "priority": pr.get(s, 0)} for s, d in steps
    )


# a -> b -> c is a chain; x and y are free.
CHAIN = make_plan(("a", []), ("b", ["a"]), ("c", ["b"]), ("x", []), ("y", []))


def test_list_order_is_priority_then_plan_order_but_deps_first() -> None:
    p = make_plan(("a", []), ("b", ["a"]), ("z", []), priorities={"a": 5, "b": 0, "z": 1})
    # b has the best priority but needs a; z beats a on priority.
    assert list_order(p) == ("z", "a", "b")


def test_central_deals_round_robin_and_an_agent_waits_on_its_own_next_step() -> None:
    e = CentralEngine(CHAIN, ["p", "q"])
    assert e.assignment == {"p": ("a", "c", "y"), "q": ("b", "x")}
    # q's first step b needs a: q waits although x (also q's) is ready.
    assert e.handle([Tick(0)]) == (Run("a", 1, "p"),)
    assert e.stats.waits == 1
    out = e.handle([AttemptFinished("a", 1, "p", 1.0)])
    # p's next is c, which needs b: p waits; q can now run b.
    assert out == (Run("b", 1, "q"),)
    assert e.stats.waits == 2
    out = e.handle([AttemptFinished("b", 1, "q", 2.0)])
    assert out == (Run("c", 1, "p"), Run("x", 1, "q"))
    e.handle([AttemptFinished("c", 1, "p", 3.0), AttemptFinished("x", 1, "q", 3.0)])
    out = e.handle([AttemptFinished("y", 1, "p", 4.0)])
    assert out == (TeamDone(4.0, 4.0),)


def test_claim_takes_the_top_of_the_list_and_counts_blocked_claims() -> None:
    e = ClaimEngine(CHAIN, ["p", "q"])
    e.handle([Tick(0)])
    assert e.choose("p") == "a"
    out = e.handle([ClaimAttempted("p", "a", 0.0)])
    assert out == (ClaimGranted("p", "a", ()), Run("a", 1, "p"))
    # q reads the list after p's claim landed: the next pending step is b, not ready.
    assert e.choose("q") == "b"
    out = e.handle([ClaimAttempted("q", "b", 0.1)])
    assert out == (ClaimGranted("q", "b", ("a",)),)
    assert e.stats.blocked_claims == 1
    assert not e.idle("q")
    out = e.handle([AttemptFinished("a", 1, "p", 1.0)])
    assert out == (Run("b", 1, "q"),)
    assert e.idle("p")
    assert e.choose("p") == "c"


def test_concurrent_claims_of_one_step_first_wins() -> None:
    e = ClaimEngine(CHAIN, ["p", "q", "r"])
    e.handle([Tick(0)])
    picks = [e.choose(a) for a in ("p", "q", "r")]  # all read the same list
    assert picks == ["a", "a", "a"]
    out = e.handle([ClaimAttempted(a, "a", 0.0) for a in ("q", "p", "r")])
    assert out[:3] == (
        ClaimGranted("q", "a", ()),
        ClaimLost("p", "a", "q"),
        ClaimLost("r", "a", "q"),
    )
    assert e.stats.concurrent_claims == 2
    assert e.stats.claims == 3
    assert e.idle("p")
    assert e.choose("p") == "b"


def test_claim_rejects_claims_from_strangers_and_double_claims() -> None:
    e = ClaimEngine(CHAIN, ["p"])
    with pytest.raises(ConfigError, match="unknown agent"):
        e.handle([ClaimAttempted("zz", "a", 0.0)])
    e.handle([ClaimAttempted("p", "a", 0.0)])
    with pytest.raises(ConfigError, match="holding a claim"):
        e.handle([ClaimAttempted("p", "x", 0.0)])
    with pytest.raises(ConfigError, match="unknown step"):
        ClaimEngine(CHAIN, ["p"]).handle([ClaimAttempted("p", "nope", 0.0)])


def test_agent_bound_modes_retry_on_the_same_agent_then_fail() -> None:
    e = CentralEngine(make_plan(("a", [])), ["p"])
    e.handle([Tick(0)])
    assert e.handle([AttemptFailed("a", 1, "p", 1.0)]) == (Run("a", 2, "p"),)
    assert e.handle([AttemptFailed("a", 2, "p", 2.0)]) == (Run("a", 3, "p"),)
    out = e.handle([AttemptFailed("a", 3, "p", 3.0)])
    assert isinstance(out[-1], TeamFailed)
    assert out[-1].step_id == "a"


def test_a_late_result_for_a_done_step_is_a_duplicate() -> None:
    e = CentralEngine(make_plan(("a", []), ("b", [])), ["p"])
    e.handle([Tick(0)])
    e.handle([AttemptFinished("a", 1, "p", 1.0)])
    e.handle([AttemptFinished("a", 1, "p", 1.5)])
    assert e.stats.duplicates == 1


def test_bad_team_settings_are_rejected() -> None:
    with pytest.raises(ConfigError, match="at least one agent"):
        CentralEngine(CHAIN, [])
    with pytest.raises(ConfigError, match="unique"):
        ClaimEngine(CHAIN, ["p", "p"])
    with pytest.raises(ConfigError, match="takes no claims"):
        CentralEngine(CHAIN, ["p"]).handle([ClaimAttempted("p", "a", 0.0)])
