"""The gateway's settings, from `SYNOD_*` environment variables."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from synod.core.taskview import DEFAULT_CAPACITY


class GatewaySettings(BaseSettings):
    """What the gateway reads besides `synod.settings.KafkaSettings`."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_", extra="ignore")

    gateway_host: str = Field(default="127.0.0.1", description="address to listen on")
    gateway_port: int = Field(default=8080, ge=0, le=65_535, description="0: any free port")
    # NoDecode: a comma-separated list, not the JSON pydantic-settings expects by default.
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="comma-separated bearer tokens (principal=sha256:<hex>, principal=token "
        "or token; synod.roles.gateway.tokens); unset or empty: no authentication",
    )
    gateway_rate_per_s: float = Field(
        default=50.0, ge=0, description="requests per second per token (0: unlimited)"
    )
    gateway_rate_burst: float = Field(default=100.0, ge=1, description="requests at once")
    gateway_request_timeout_s: float = Field(
        default=30.0, ge=0, description="bound on every answer but an event stream (0: none)"
    )
    gateway_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated origins allowed to call /v1 from a browser; unset: no CORS",
    )
    instance: str = Field(default="gateway-0", min_length=1, description="instance id")
    gateway_index_capacity: int = Field(
        default=DEFAULT_CAPACITY, ge=1, description="tasks kept in the view (LRU)"
    )
    gateway_view_window_s: float = Field(
        default=86_400.0,
        ge=0,
        description="the view starts this far back in the logs, not at their beginning "
        "(start-up bounded by a day of traffic, not by retention); 0: from the beginning",
    )
    gateway_keepalive_s: float = Field(
        default=15.0, gt=0, description="SSE keep-alive comment interval"
    )
    gateway_publish_timeout_s: float = Field(
        default=10.0, gt=0, description="bound on publishing a task; then 503"
    )
    gateway_outcome_grace_s: float = Field(
        default=5.0,
        ge=0,
        description="how long a stream holds an outcome read from synod.results for its copy "
        "in synod.task-events, so events stay in log order",
    )
    console_trace_url: str = Field(
        default="",
        description="a trace UI's URL with {trace_id} in it; the console links each task's trace",
    )
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    drain_timeout_s: float = Field(
        default=10.0, gt=0, description="bound on finishing in-flight requests at shutdown"
    )
    log_level: str = "INFO"

    @field_validator("api_tokens", "gateway_cors_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    def tokens(self) -> list[str]:
        return [t.get_secret_value() for t in self.api_tokens]


ENV_VARS: tuple[tuple[str, str], ...] = (
    ("SYNOD_BOOTSTRAP", "Kafka bootstrap servers (default 127.0.0.1:9092)"),
    ("SYNOD_TOPIC_PREFIX", "prefix of every topic name (default none)"),
    ("SYNOD_GATEWAY_HOST", "address to listen on (default 127.0.0.1)"),
    ("SYNOD_GATEWAY_PORT", "port to listen on (default 8080; 0: any free port)"),
    ("SYNOD_API_TOKENS", "comma-separated bearer tokens; unset: no authentication"),
    ("SYNOD_GATEWAY_RATE_PER_S", "requests per second per token (default 50; 0: unlimited)"),
    ("SYNOD_GATEWAY_RATE_BURST", "requests per token at once (default 100)"),
    ("SYNOD_GATEWAY_REQUEST_TIMEOUT_S", "bound on every answer but a stream (default 30)"),
    ("SYNOD_GATEWAY_CORS_ORIGINS", "origins allowed to call /v1 from a browser (default none)"),
    ("SYNOD_INSTANCE", "instance id, the sender of submitted tasks (default gateway-0)"),
    ("SYNOD_GATEWAY_INDEX_CAPACITY", "tasks kept in the in-memory view (default 10000)"),
    ("SYNOD_GATEWAY_KEEPALIVE_S", "SSE keep-alive interval in seconds (default 15)"),
    ("SYNOD_GATEWAY_PUBLISH_TIMEOUT_S", "bound on publishing a task (default 10)"),
    ("SYNOD_GATEWAY_OUTCOME_GRACE_S", "hold an outcome for its task-log copy (default 5)"),
    ("SYNOD_CONSOLE_TRACE_URL", "trace UI link for the console, with {trace_id} (default none)"),
    ("SYNOD_HEARTBEAT_INTERVAL_S", "heartbeat period on synod.heartbeats (default 1)"),
    ("SYNOD_DRAIN_TIMEOUT_S", "bound on draining requests at shutdown (default 10)"),
    ("SYNOD_LOG_LEVEL", "log level (default INFO)"),
)
