"""Every integer on the wire is an Avro long: a value outside 64 bits is refused when
the message is built (a 422 at the gateway that names the field), never at encode
time (a 500: schemathesis found one with a plan step's `priority`)."""

from __future__ import annotations

import types
import typing
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from synod.wire import Codec, Envelope, PlanStep, Sender, TaskSubmitted
from synod.wire.messages import BODY_TYPES, LONG_RANGE

TOO_BIG = 2**63


def _limits(metadata: Any) -> tuple[Any, Any]:
    ge = max((m.ge for m in metadata if getattr(m, "ge", None) is not None), default=None)
    le = min((m.le for m in metadata if getattr(m, "le", None) is not None), default=None)
    return ge, le


def _fits(ge: Any, le: Any) -> bool:
    return ge is not None and le is not None and ge >= -(2**63) and le <= 2**63 - 1


def _unbounded(model: type[BaseModel], seen: set[type]) -> tuple[int, list[str]]:
    """(integers found, those a value outside 64 bits could pass) in `model` and the
    models it holds: each `int` must carry the long range check (`Long`) or bounds
    of its own that fit in 64 bits."""
    if model in seen:
        return 0, []
    seen.add(model)
    found, bad = 0, []
    for name, info in model.model_fields.items():
        stack: list[tuple[Any, Any]] = [(info.annotation, info.metadata)]
        while stack:
            t, metadata = stack.pop()
            if t is int:
                found += 1
                if LONG_RANGE not in metadata and not _fits(*_limits(metadata)):
                    bad.append(f"{model.__name__}.{name}")
            elif get_origin(t) is typing.Annotated:
                inner, *extra = get_args(t)
                found_in = [x for e in extra for x in getattr(e, "metadata", [e])]
                stack.append((inner, [*metadata, *found_in]))
            elif isinstance(t, type) and issubclass(t, BaseModel):
                more, worse = _unbounded(t, seen)
                found, bad = found + more, bad + worse
            elif get_origin(t) is not None:
                # Inside a container the field's own bounds do not apply to items;
                # in `X | None` they do.
                union = get_origin(t) in (typing.Union, types.UnionType)
                stack.extend(
                    (a, metadata if union else []) for a in get_args(t) if a is not type(None)
                )
    return found, bad


def test_every_integer_field_is_bounded_to_64_bits() -> None:
    seen: set[type] = set()
    found, bad = 0, []
    for model in [*BODY_TYPES.values(), Envelope]:
        more, worse = _unbounded(model, seen)
        found, bad = found + more, bad + worse
    assert found > 30  # the walk found them
    assert not bad, "integers Avro cannot encode are accepted: " + ", ".join(bad)


def test_a_too_large_priority_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        TaskSubmitted(goal="g", plan=[PlanStep(step_id="s1", priority=TOO_BIG)])
    assert "priority" in str(raised.value)
    # The largest long still goes through the codec.
    body = TaskSubmitted(goal="g", plan=[PlanStep(step_id="s1", priority=TOO_BIG - 1)])
    env = Envelope.new(body, sender=Sender(role="client", instance="c"), task_id="t")
    assert Codec().decode(Codec().encode(env)).body.plan[0].priority == TOO_BIG - 1
