"""The structured outputs of the four agent roles, as the model must return them.

Validators here are the checks worth a repair turn: a plan whose dependencies do
not resolve, a vote whose choice does not match its kind, a file path outside
the workspace. Unknown fields are ignored, because a model adding a harmless
field is not worth a second call.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synod.llm.types import AgentRole
from synod.wire.messages import VoteKind


class RoleOutput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PlannedStep(RoleOutput):
    step_id: str = Field(min_length=1, max_length=200)
    role: Literal["researcher", "coder", "reviewer"]
    title: str = Field(min_length=1, max_length=1_000)
    description: str = ""
    depends_on: list[str] = Field(default_factory=list)


class PlanOutput(RoleOutput):
    """A planner's plan: a DAG of steps."""

    steps: list[PlannedStep] = Field(min_length=1)
    rationale: str = ""

    @model_validator(mode="after")
    def _is_a_dag(self) -> PlanOutput:
        ids = [s.step_id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("step_id values must be unique")
        known = set(ids)
        for step in self.steps:
            missing = [d for d in step.depends_on if d not in known]
            if missing:
                raise ValueError(f"step {step.step_id!r} depends on unknown steps {missing}")
        # Kahn's algorithm: whatever cannot be ordered sits on a cycle.
        waiting = {s.step_id: set(s.depends_on) for s in self.steps}
        while True:
            ready = [sid for sid, deps in waiting.items() if not deps]
            if not ready:
                break
            for sid in ready:
                del waiting[sid]
            for deps in waiting.values():
                deps.difference_update(ready)
        if waiting:
            raise ValueError(f"the dependencies form a cycle through {sorted(waiting)}")
        return self


class FactClaim(RoleOutput):
    """One fact for the task's blackboard: `key` holds `value`, this sure (docs/blackboard.md)."""

    key: str = Field(min_length=1, max_length=200)
    value: str = Field(max_length=2_000)
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)


class ResearchNotes(RoleOutput):
    """A researcher's notes, and the facts it publishes to the task's blackboard."""

    summary: str = Field(min_length=1)
    findings: list[str] = Field(default_factory=list)
    facts: list[FactClaim] = Field(default_factory=list, max_length=20)


class CodeFile(RoleOutput):
    path: str = Field(min_length=1, max_length=1_000)
    content: str

    @field_validator("path")
    @classmethod
    def _inside_workspace(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError("path must be relative to the workspace, with / and no '..'")
        return value


class CodeOutput(RoleOutput):
    """A coder's change: whole files and why."""

    files: list[CodeFile] = Field(min_length=1)
    explanation: str = ""


class ReviewVerdict(RoleOutput):
    """A reviewer's vote on candidates: one choice, a reject of all, or an abstention."""

    kind: VoteKind
    choice: str | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    rationale: str = ""

    @model_validator(mode="after")
    def _choice_matches_kind(self) -> ReviewVerdict:
        if (self.kind == "choice") != (self.choice is not None):
            raise ValueError("kind 'choice' needs a choice; 'reject' and 'abstain' have none")
        return self


OUTPUT_MODELS: dict[AgentRole, type[RoleOutput]] = {
    "planner": PlanOutput,
    "researcher": ResearchNotes,
    "coder": CodeOutput,
    "reviewer": ReviewVerdict,
}
