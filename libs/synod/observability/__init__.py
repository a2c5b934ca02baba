"""Traces (OpenTelemetry) and Prometheus metrics for the adapters; may import core and below.

May import synod.core, synod.wire, synod.errors and synod.settings only;
synod.transport, synod.llm and synod.service import it (never the reverse).

- `tracing`: one tracer provider of Synod's own, configured only by the standard
  `OTEL_*` variables, off (a no-op costing one branch per hop) unless an OTLP
  endpoint is set; never the host's global provider unless a Synod service's
  `main` asks for it.
- `hops`: the span of each Kafka hop (a producer span on publish, a process span
  around the handler on consume) and of each LLM call, in the one place every
  service goes through.
- `metrics`: lag, hop latency, end-to-end task latency, errors by class, tokens.
"""

from synod.observability.hops import llm_call, process_span, publish_span
from synod.observability.metrics import record_consumer_lag, record_task_end
from synod.observability.tracing import (
    configure_from_env,
    current_log_ids,
    shutdown,
    tracing_enabled,
    use_tracer_provider,
)

__all__ = [
    "configure_from_env",
    "current_log_ids",
    "llm_call",
    "process_span",
    "publish_span",
    "record_consumer_lag",
    "record_task_end",
    "shutdown",
    "tracing_enabled",
    "use_tracer_provider",
]
