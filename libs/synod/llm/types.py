"""What goes into an LLM backend and what comes out: one request, one response, one protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from synod.wire.messages import Candidate, ModelRoute, Usage

AgentRole = Literal["planner", "researcher", "coder", "reviewer"]
AGENT_ROLES: tuple[AgentRole, ...] = ("planner", "researcher", "coder", "reviewer")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, kw_only=True, slots=True)
class LLMRequest:
    """One completion an agent asks for.

    `task_id`, `step_id`, `attempt` and `role` identify the call; the simulated
    backend derives everything it does from them (and its seed), so a retry is a
    new attempt number, never the same request again.

    `output_model`, when given, makes the call structured: the reply must be one
    JSON object valid for that pydantic model, with one repair turn allowed.

    `model`, `max_tokens`, `temperature` and `timeout_s` override the backend's
    defaults for this call (a supervisor reassigning a step changes them).

    `candidates` and `reference` are for reviewers: what to judge, and (for the
    simulated backend only) the id of the candidate known to be correct. The real
    model never sees them unless the agent renders them into the prompt.

    `files` are the workspace paths a coder step is asked to write; the simulated
    coder writes exactly these.

    `kind` (the step kind: `merge`, `revise`, or empty for a plain step) and
    `labels` (the task's routing labels, `model.<role>[.<kind>]`) choose the
    model when `model` is not given; see synod.llm.routing. `model` may name a
    provider too: `openai:gpt-5-mini`.
    """

    role: AgentRole
    task_id: str
    step_id: str
    prompt: str
    system: str = ""
    attempt: int = 0
    output_model: type[BaseModel] | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    timeout_s: float | None = None
    prompt_variant: str = ""
    candidates: tuple[Candidate, ...] = ()
    reference: str | None = None
    files: tuple[str, ...] = ()
    kind: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.task_id or not self.step_id:
            raise ValueError("an LLMRequest needs a task_id and a step_id")
        if self.attempt < 0:
            raise ValueError(f"attempt must be >= 0, not {self.attempt}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, not {self.max_tokens}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, not {self.timeout_s}")
        ids = [c.candidate_id for c in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError("candidate ids must be unique")
        if self.reference is not None and self.reference not in ids:
            raise ValueError(f"reference {self.reference!r} is not one of the candidates")


@dataclass(frozen=True, kw_only=True, slots=True)
class LLMResponse:
    """A completed call.

    `usage` sums every model call made for this request (a repaired structured
    output counts 2 calls). `retries` counts HTTP retries the provider's SDK made
    underneath. `fault` names the fault the simulated backend injected, if any;
    it is for diagnostics and tests, never for agent logic. `route` (set by the
    resilience wrapper) says which provider and model answered, how the model was
    chosen, and which links of the fallback chain were passed over and why.
    """

    text: str
    parsed: BaseModel | None
    usage: Usage
    model: str
    latency_s: float
    stop_reason: str | None = None
    retries: int = 0
    fault: str | None = None
    route: ModelRoute | None = None

    def output(self, model: type[M]) -> M:
        """The parsed output as `model`, for a request made with that `output_model`."""
        if not isinstance(self.parsed, model):
            got = type(self.parsed).__name__
            raise TypeError(f"the response holds a {got}, not a {model.__name__}")
        return self.parsed


@runtime_checkable
class LLMBackend(Protocol):
    """A source of completions: Claude through the SDK, or the simulation."""

    @property
    def name(self) -> str: ...

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Complete one request, or raise an `LLMError` subclass."""
        ...

    async def aclose(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...


def add_usage(first: Usage, second: Usage) -> Usage:
    """The usage of two calls together (the model is the latest one named)."""
    return Usage(
        model=second.model or first.model,
        calls=first.calls + second.calls,
        input_tokens=first.input_tokens + second.input_tokens,
        output_tokens=first.output_tokens + second.output_tokens,
        cost_usd=first.cost_usd + second.cost_usd,
        unpriced_calls=first.unpriced_calls + second.unpriced_calls,
    )
