"""The blackboard on the wire: `FactPublished` records into the CRDT, and the text a step reads.

A step is given the blackboard as `inputs["blackboard"]`: one line per live
fact, `- fact {json}`, that a model can read and `parse` can read back (the
simulated model and the worker both do: the worker to know which facts its
step observed, so its own facts on those keys remove them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from synod.core.blackboard.crdt import Blackboard, Fact
from synod.wire import Envelope
from synod.wire.messages import FactPublished

# The step an `eventual` task runs before its vote to settle its board's conflicts.
RECONCILE_STEP = "reconcile:blackboard"
LINE_PREFIX = "- fact "
HEADER = "Facts on the task's blackboard (key, value, the writer's confidence):"


def fact_of(envelope: Envelope[Any]) -> tuple[Fact, tuple[str, ...]] | None:
    """The fact of a FactPublished record and the tags it removes; None for any other."""
    body = envelope.body
    if not isinstance(body, FactPublished):
        return None
    fact = Fact(
        fact_id=body.fact_id,
        key=body.key,
        value=body.value,
        confidence=body.confidence,
        step_id=body.step_id,
        attempt=envelope.attempt,
        author=body.author,
    )
    return fact, tuple(body.observed)


def apply_record(board: Blackboard, envelope: Envelope[Any]) -> Blackboard:
    """`board` with the record's fact applied (unchanged for other records)."""
    found = fact_of(envelope)
    return board if found is None else board.add(*found)


def render(facts: Iterable[Fact]) -> str:
    """The blackboard as a step reads it; empty when there is no fact."""
    lines = [
        LINE_PREFIX
        + json.dumps(
            {
                "key": f.key,
                "value": f.value,
                "confidence": f.confidence,
                "step": f.step_id,
                "id": f.fact_id,
            },
            sort_keys=True,
        )
        for f in facts
    ]
    return "\n".join([HEADER, *lines]) if lines else ""


@dataclass(frozen=True)
class ParsedFact:
    fact_id: str
    key: str
    value: str
    confidence: float
    step_id: str


def parse(text: str) -> list[ParsedFact]:
    """The facts of a rendered blackboard; lines that are not facts are skipped."""
    out: list[ParsedFact] = []
    for line in text.splitlines():
        if not line.startswith(LINE_PREFIX):
            continue
        try:
            doc = json.loads(line[len(LINE_PREFIX) :])
            out.append(
                ParsedFact(
                    fact_id=str(doc["id"]),
                    key=str(doc["key"]),
                    value=str(doc["value"]),
                    confidence=float(doc["confidence"]),
                    step_id=str(doc.get("step", "")),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return out


def resolved_values(board: Blackboard) -> dict[str, str]:
    """key -> the value `resolve_key` picks: what an answer built on the board says."""
    return {key: fact.value for key, fact in board.resolved().items()}
