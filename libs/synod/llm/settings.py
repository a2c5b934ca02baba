"""The LLM settings, read from the environment (`SYNOD_LLM_*`, and the provider's own names)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from synod.errors import ConfigError
from synod.llm.faults import Latency

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 4_096
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_RETRY_AFTER_S = 30.0


class LLMSettings(BaseSettings):
    """Which backend, which model, and how patient; secrets stay masked when printed."""

    model_config = SettingsConfigDict(
        env_prefix="SYNOD_LLM_", extra="ignore", populate_by_name=True
    )

    backend: Literal["auto", "anthropic", "sim"] = "auto"
    model: str = DEFAULT_MODEL
    # For the resilience layer's fallback; the backends themselves use `model`.
    fallback_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0)
    max_retry_after_s: float = Field(default=DEFAULT_MAX_RETRY_AFTER_S, ge=0)
    stream: bool = False
    sim_seed: int = 0
    sim_latency: str | None = None
    fault_profile: str = "none"
    # model -> [USD per million input tokens, USD per million output tokens]
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)

    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")

    @field_validator("fallback_models", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [name.strip() for name in text.split(",") if name.strip()]
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
