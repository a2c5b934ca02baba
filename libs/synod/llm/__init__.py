"""LLM adapter (Claude, OpenAI-compatible, simulation, routing, breakers); imports core and below.

Agents call `select_backend()` once, then `await backend.complete(LLMRequest(...))`.
The anthropic SDK is imported only when the anthropic backend is chosen; import
`synod.llm.anthropic_backend` directly to build one by hand.
"""

from synod.llm.errors import (
    LLMBudgetError,
    LLMError,
    LLMErrorReason,
    LLMPermanentError,
    LLMTimeoutError,
    LLMTransientError,
)
from synod.llm.faults import PROFILES, FaultName, FaultProfile, Latency, load_profile
from synod.llm.outputs import (
    OUTPUT_MODELS,
    CodeFile,
    CodeOutput,
    PlannedStep,
    PlanOutput,
    ResearchNotes,
    ReviewVerdict,
)
from synod.llm.selection import backend_choice, select_backend
from synod.llm.settings import LLMSettings, load_settings
from synod.llm.sim import SimBackend, SimDecision, SimulatedCrash
from synod.llm.simcontent import WRONG_MARKER, expected_answer
from synod.llm.types import AgentRole, LLMBackend, LLMRequest, LLMResponse, add_usage

__all__ = [
    "OUTPUT_MODELS",
    "PROFILES",
    "WRONG_MARKER",
    "AgentRole",
    "CodeFile",
    "CodeOutput",
    "FaultName",
    "FaultProfile",
    "LLMBackend",
    "LLMBudgetError",
    "LLMError",
    "LLMErrorReason",
    "LLMPermanentError",
    "LLMRequest",
    "LLMResponse",
    "LLMSettings",
    "LLMTimeoutError",
    "LLMTransientError",
    "Latency",
    "PlanOutput",
    "PlannedStep",
    "ResearchNotes",
    "ReviewVerdict",
    "SimBackend",
    "SimDecision",
    "SimulatedCrash",
    "add_usage",
    "backend_choice",
    "expected_answer",
    "load_profile",
    "load_settings",
    "select_backend",
]
