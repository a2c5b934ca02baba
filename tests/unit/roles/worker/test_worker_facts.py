"""The researcher's facts as records: ids from the request and key, observed from its board."""

from __future__ import annotations

import json

from synod.core.blackboard import Fact, render
from synod.roles.worker.service import facts_to_publish
from synod.wire import StepRequested


def notes(*facts: tuple[str, str, float]) -> str:
    return json.dumps(
        {
            "summary": "s",
            "facts": [{"key": k, "value": v, "confidence": c} for k, v, c in facts],
        }
    )


def test_each_fact_replaces_the_facts_of_its_key_the_step_was_handed() -> None:
    board = render(
        [
            Fact(fact_id="f1", key="approach", value="old", confidence=0.4, step_id="r1"),
            Fact(fact_id="f2", key="approach", value="other", confidence=0.5, step_id="r2"),
            Fact(fact_id="f3", key="limit", value="100", step_id="r1"),
        ]
    )
    step = StepRequested(step_id="r3", role="researcher", inputs={"blackboard": board})
    out = facts_to_publish("req-1", "researcher-0", step, notes(("approach", "new", 0.9)))
    (fact,) = out
    assert fact.observed == ["f1", "f2"]  # not f3: another key
    assert (fact.key, fact.value, fact.confidence) == ("approach", "new", 0.9)
    assert fact.step_id == "r3"
    again = facts_to_publish("req-1", "researcher-1", step, notes(("approach", "new", 0.9)))
    assert again[0].fact_id == fact.fact_id  # a rerun of the request repeats the same fact
    other = facts_to_publish("req-2", "researcher-0", step, notes(("approach", "new", 0.9)))
    assert other[0].fact_id != fact.fact_id


def test_output_that_is_not_research_notes_publishes_no_fact() -> None:
    step = StepRequested(step_id="r1", role="researcher")
    assert facts_to_publish("req", "r", step, "plain text") == []
    assert facts_to_publish("req", "r", step, notes()) == []
