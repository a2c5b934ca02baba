"""The LLM settings, read from the environment (`SYNOD_LLM_*`, and the provider's own names)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from synod.errors import ConfigError
from synod.llm.faults import Latency

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_OPENAI_MODEL = "gpt-4.1-mini"
DEFAULT_MAX_TOKENS = 4_096
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_RETRY_AFTER_S = 30.0


class LLMSettings(BaseSettings):
    """Which backend, which model, and how patient; secrets stay masked when printed."""

    model_config = SettingsConfigDict(
        env_prefix="SYNOD_LLM_", extra="ignore", populate_by_name=True
    )

    backend: Literal["auto", "anthropic", "openai", "sim"] = "auto"
    # The primary backend's default model; unset, each provider's own default
    # (claude-sonnet-5-5 for anthropic, SYNOD_OPENAI_MODEL for openai).
    model: str | None = None
    # For the resilience layer's fallback chain (synod.llm.resilient): "model" or
    # "provider:model" entries tried in order after `model`; the backends use `model`.
    fallback_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices(
            "SYNOD_LLM_FALLBACK", "SYNOD_LLM_FALLBACK_MODELS", "fallback_models"
        ),
    )
    # The circuit breaker of each (provider, model); see synod.core.resilience.breaker.
    breaker_window_s: float = Field(default=60.0, gt=0)
    breaker_min_calls: int = Field(default=20, ge=1)
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_open_for_s: float = Field(default=30.0, ge=0)
    breaker_half_open_probes: int = Field(default=1, ge=1)
    breaker_success_to_close: int = Field(default=1, ge=1)
    # A 429/529 asking to wait at least this long opens the breaker until then; 0: never.
    breaker_retry_after_hold_s: float = Field(default=30.0, ge=0)
    # Bulkheads: calls in flight at once per provider, and per agent role, in
    # this process ("anthropic=16" or {"anthropic": 16}); a name not given is unbounded.
    provider_concurrency: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    role_concurrency: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("SYNOD_ROLE_CONCURRENCY", "role_concurrency"),
    )
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0)
    max_retry_after_s: float = Field(default=DEFAULT_MAX_RETRY_AFTER_S, ge=0)
    stream: bool = False
    sim_seed: int = 0
    # A JSON-lines file the simulated backend appends every prompt to (tests read
    # what a model was asked); empty: none.
    sim_prompt_log: str = ""
    sim_latency: str | None = None
    # step id -> extra seconds its first attempt (attempt 0) sleeps, e.g. "task-3=30":
    # a deterministic straggler for hedging tests; later attempts are not slowed.
    sim_slow_steps: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    # Step-id patterns (fnmatch, comma-separated) whose calls give the "wrong" output
    # whatever the profile draws, e.g. "t1/answer/b*/reviewer-[12]": jurors that
    # reject on demand, so a test can make a cut-away minority overturn a decision.
    sim_wrong_steps: Annotated[tuple[str, ...], NoDecode] = ()
    fault_profile: str = "none"
    # "provider:model" (or a bare model, any provider) -> [USD per million input
    # tokens, USD per million output tokens(, USD per million cached input tokens)]
    prices: dict[str, tuple[float, float] | tuple[float, float, float]] = Field(
        default_factory=dict
    )
    # Routing (synod.llm.routing): "<role>[.<kind>]" -> "[provider:]model", from
    # SYNOD_LLM_ROUTING ("coder=anthropic:claude-opus-5-5,researcher=openai:gpt-4.1-mini"
    # or JSON), and one variable per role, SYNOD_MODEL_<ROLE>, over its entries.
    routing: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    model_planner: str = Field(default="", validation_alias="SYNOD_MODEL_PLANNER")
    model_researcher: str = Field(default="", validation_alias="SYNOD_MODEL_RESEARCHER")
    model_coder: str = Field(default="", validation_alias="SYNOD_MODEL_CODER")
    model_reviewer: str = Field(default="", validation_alias="SYNOD_MODEL_REVIEWER")

    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")

    # The OpenAI-compatible backend (OpenAI, vLLM, Ollama, llama.cpp, OpenRouter).
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SYNOD_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
    )
    openai_model: str = Field(
        default=DEFAULT_OPENAI_MODEL, validation_alias="SYNOD_OPENAI_MODEL", min_length=1
    )
    # None: as SYNOD_LLM_STREAM. Some compatible servers stream without usage.
    openai_stream: bool | None = Field(default=None, validation_alias="SYNOD_OPENAI_STREAM")
    # Which request field carries max_tokens: OpenAI's reasoning models (o-series,
    # gpt-5) take only max_completion_tokens; most compatible servers take max_tokens.
    openai_max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens", validation_alias="SYNOD_OPENAI_MAX_TOKENS_PARAM"
    )
    # text: the JSON Schema in the prompt only (works everywhere); json_object /
    # json_schema: also ask the server for JSON mode (if it supports it).
    openai_response_format: Literal["text", "json_object", "json_schema"] = Field(
        default="text", validation_alias="SYNOD_OPENAI_RESPONSE_FORMAT"
    )
    # Reasoning models reject a non-default temperature (a supervisor's reassignment
    # sets one): false drops it, as the anthropic backend always does.
    openai_send_temperature: bool = Field(
        default=True, validation_alias="SYNOD_OPENAI_SEND_TEMPERATURE"
    )

    @field_validator("fallback_models", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [name.strip() for name in text.split(",") if name.strip()]
        return value

    @field_validator("sim_wrong_steps", mode="before")
    @classmethod
    def _wrong_steps(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("sim_slow_steps", mode="before")
    @classmethod
    def _slow_steps(cls, value: object) -> object:
        if isinstance(value, str):
            slow: dict[str, str] = {}
            for item in filter(None, (part.strip() for part in value.split(","))):
                step, sep, seconds = item.rpartition("=")
                if not sep or not step.strip():
                    raise ValueError(f"expected step_id=seconds, got {item!r}")
                slow[step.strip()] = seconds.strip()
            return slow
        return value

    @field_validator("provider_concurrency", "role_concurrency", "routing", mode="before")
    @classmethod
    def _limits(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                return json.loads(text)
            limits: dict[str, str] = {}
            for item in filter(None, (part.strip() for part in text.split(","))):
                name, sep, limit = item.partition("=")
                if not sep or not name.strip():
                    raise ValueError(f"expected name=limit, got {item!r}")
                limits[name.strip()] = limit.strip()
            return limits
        return value

    @field_validator("provider_concurrency", "role_concurrency")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if v < 1}
        if bad:
            raise ValueError(f"limits must be >= 1: {bad}")
        return value

    @field_validator("sim_latency")
    @classmethod
    def _latency_spec(cls, value: str | None) -> str | None:
        if value is not None:
            Latency.parse(value)  # raises ConfigError with the accepted forms
        return value

    @property
    def has_api_key(self) -> bool:
        return bool(self.anthropic_api_key and self.anthropic_api_key.get_secret_value())

    @property
    def has_openai(self) -> bool:
        """An OpenAI-compatible server to talk to: a key (OpenAI itself) or a base URL
        (a local server needs no key)."""
        key = self.openai_api_key.get_secret_value() if self.openai_api_key else ""
        return bool(key or self.openai_base_url)

    def default_model(self, provider: str, primary: str) -> str:
        """A provider's default model: SYNOD_LLM_MODEL for the primary backend when set,
        else the provider's own (claude-sonnet-5-5, SYNOD_OPENAI_MODEL, sim)."""
        if provider == primary and self.model:
            return self.model
        return {"anthropic": DEFAULT_MODEL, "openai": self.openai_model}.get(provider, "sim")

    def per_role_models(self) -> dict[str, str]:
        """SYNOD_MODEL_<ROLE>, by role, where set."""
        given = {
            "planner": self.model_planner,
            "researcher": self.model_researcher,
            "coder": self.model_coder,
            "reviewer": self.model_reviewer,
        }
        return {role: spec for role, spec in given.items() if spec}


def load_settings() -> LLMSettings:
    """The settings from the environment; bad values raise `ConfigError` naming them."""
    try:
        return LLMSettings()
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in err.errors(include_url=False)
        )
        raise ConfigError(f"invalid LLM settings (SYNOD_LLM_*): {problems}") from None
