"""The role output models reject what is worth a repair turn."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from synod.llm import CodeFile, PlannedStep, PlanOutput, ReviewVerdict


def step(step_id: str, *depends_on: str) -> PlannedStep:
    return PlannedStep(step_id=step_id, role="coder", title=step_id, depends_on=list(depends_on))


def test_a_plan_is_a_dag() -> None:
    PlanOutput(steps=[step("a"), step("b", "a"), step("c", "a", "b")])
    with pytest.raises(ValidationError, match="unknown steps"):
        PlanOutput(steps=[step("a", "z")])
    with pytest.raises(ValidationError, match="unique"):
        PlanOutput(steps=[step("a"), step("a")])
    with pytest.raises(ValidationError, match="cycle"):
        PlanOutput(steps=[step("a", "c"), step("b", "a"), step("c", "b"), step("d")])


@pytest.mark.parametrize("path", ["/etc/passwd", "../up.py", "a/../../b", "C:\\x.py"])
def test_code_paths_stay_in_the_workspace(path: str) -> None:
    with pytest.raises(ValidationError):
        CodeFile(path=path, content="")


def test_a_verdict_choice_matches_its_kind() -> None:
    ReviewVerdict(kind="choice", choice="c1", confidence=0.9)
    ReviewVerdict(kind="reject", confidence=0.9)
    with pytest.raises(ValidationError):
        ReviewVerdict(kind="choice", confidence=0.9)
    with pytest.raises(ValidationError):
        ReviewVerdict(kind="abstain", choice="c1", confidence=0.9)
    with pytest.raises(ValidationError):
        ReviewVerdict(kind="reject", confidence=1.5)
