"""The simulated researcher's facts: true unless its source is stale, careful of the board."""

from __future__ import annotations

import random

from synod.core.blackboard import Fact, render
from synod.llm.outputs import ResearchNotes
from synod.llm.simcontent import SHARED_FACT, STALE_MARKER, notes, true_fact
from synod.llm.types import LLMRequest


def research(step_id: str, prompt: str, seed: int = 0) -> ResearchNotes:
    request = LLMRequest(role="researcher", task_id="t1", step_id=step_id, prompt=prompt)
    return notes(request, random.Random(seed), wrong=False)


def shared(out: ResearchNotes) -> list[tuple[str, float]]:
    return [(f.value, f.confidence) for f in out.facts if f.key == SHARED_FACT]


def test_a_researcher_states_the_truth_unless_it_reads_a_stale_source() -> None:
    truth = true_fact("t1", SHARED_FACT)
    ((value, confidence),) = shared(research("r1", "# Survey\n\nRead the notes."))
    assert value == truth
    assert confidence >= 0.75
    ((value, confidence),) = shared(research("r2", f"# Survey\n\nRead it. [{STALE_MARKER}]"))
    assert value != truth
    assert confidence <= 0.6
    assert any(f.key == "r1.finding" for f in research("r1", "x").facts)


def test_it_leaves_a_key_held_with_more_confidence_alone() -> None:
    held = render([Fact(fact_id="f1", key=SHARED_FACT, value="v", confidence=1.0)])
    assert shared(research("r2", f"# Survey\n\n{held}")) == []


def test_a_reconcile_step_publishes_the_best_supported_value_of_each_conflict() -> None:
    board = render(
        [
            Fact(fact_id="f1", key=SHARED_FACT, value="old", confidence=0.4),
            Fact(fact_id="f2", key=SHARED_FACT, value="new", confidence=0.9),
            Fact(fact_id="f3", key="limit", value="100", confidence=0.9),
        ]
    )
    out = research("reconcile:blackboard", f"# Reconcile\n\n{board}")
    assert [(f.key, f.value, f.confidence) for f in out.facts] == [(SHARED_FACT, "new", 0.9)]
