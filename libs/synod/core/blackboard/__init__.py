"""A task's blackboard of facts as an observed-remove CRDT; imports cores, wire, errors, ids.

- `crdt`: `Fact` and `Blackboard`, the state-based observed-remove map of
  facts whose `merge` is a join (commutative, associative, idempotent), so
  replicas that saw the same records in any order, with duplicates, agree.
- `records`: `FactPublished` records to and from the CRDT, and the one text
  format a step reads the blackboard in (`render`, `parse`).

No I/O, no clock; see docs/blackboard.md.
"""

from synod.core.blackboard.crdt import Blackboard, Fact, resolve_key
from synod.core.blackboard.records import (
    RECONCILE_STEP,
    ParsedFact,
    apply_record,
    fact_of,
    parse,
    render,
    resolved_values,
)

__all__ = [
    "RECONCILE_STEP",
    "Blackboard",
    "Fact",
    "ParsedFact",
    "apply_record",
    "fact_of",
    "parse",
    "render",
    "resolve_key",
    "resolved_values",
]
