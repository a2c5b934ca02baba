"""Synod's own tracer provider, configured only by the standard OTEL_* variables.

Read at start-up, never at import:

- `OTEL_SDK_DISABLED=true`: off, whatever else is set.
- `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`: where
  spans go. Neither set: tracing is off and each hop costs one branch
  (bench/tracing.py measures it).
- `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`:
  `http/protobuf` (the default, as the specification says) or `grpc`.
- `OTEL_SERVICE_NAME` (default `synod-<role>`), `OTEL_RESOURCE_ATTRIBUTES`,
  `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`, the exporters'
  headers, timeouts and certificates: read by the SDK itself, as documented by
  OpenTelemetry.

Synod used as a library never touches the process's global tracer provider:
its spans go to the provider set here (or given with `use_tracer_provider`),
and with neither it makes none. A Synod service's `main` may also install its
provider as the global one (`install_global=True`), so other instrumentation
in that process joins the same traces.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Tracer, TracerProvider

from synod.errors import ConfigError

log = logging.getLogger("synod.observability")

PROTOCOLS = ("http/protobuf", "grpc")
INSTRUMENTATION = "synod"

# The tracer every hop uses; None means tracing is off (the no-cost path).
_tracer: Tracer | None = None
_provider: Any = None  # the SDK provider we made (to flush and shut down), if any


def tracing_enabled() -> bool:
    return _tracer is not None


def tracer() -> Tracer | None:
    return _tracer


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Send Synod's spans to `provider` (None: tracing off). For hosts and tests."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer(INSTRUMENTATION)


def _env(*names: str) -> str:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return ""


def wanted() -> bool:
    """Whether the environment asks for traces (an endpoint set, the SDK not disabled)."""
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return False
    return bool(_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"))


def protocol() -> str:
    chosen = _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    chosen = chosen or "http/protobuf"
    if chosen not in PROTOCOLS:
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={chosen!r} is not supported; "
            f"use one of {', '.join(PROTOCOLS)}"
        )
    return chosen


def _exporter(chosen: str) -> Any:
    # Imported only when tracing is on: a process with no endpoint never loads
    # the exporters (grpc alone takes ~100 ms to import).
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )

    return HTTPSpanExporter()


def _resource(role: str, instance: str) -> Any:
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, str] = {"service.instance.id": instance, "synod.role": role}
    # Resource.create lets given attributes win over the environment's, so the
    # default service name is given only when neither variable names one.
    named = _env("OTEL_SERVICE_NAME") or "service.name=" in _env("OTEL_RESOURCE_ATTRIBUTES")
    if not named:
        attributes["service.name"] = f"synod-{role}"
    return Resource.create(attributes)


def configure_from_env(role: str, instance: str, *, install_global: bool = False) -> bool:
    """Set up Synod's tracer provider from the OTEL_* variables; True if tracing is on.

    Raises ConfigError for a protocol Synod cannot speak. `install_global` is for a
    Synod service's own `main` only.
    """
    global _provider
    if not wanted():
        use_tracer_provider(None)
        return False
    chosen = protocol()
    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The sampler comes from OTEL_TRACES_SAMPLER (default parentbased_always_on).
    provider = SDKTracerProvider(resource=_resource(role, instance))
    provider.add_span_processor(BatchSpanProcessor(_exporter(chosen)))
    _provider = provider
    use_tracer_provider(provider)
    if install_global:
        trace.set_tracer_provider(provider)
    log.info(
        "tracing on",
        extra={
            "protocol": chosen,
            "endpoint": _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        },
    )
    return True


def shutdown() -> None:
    """Flush what is buffered and stop exporting (a service's last act)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None
    use_tracer_provider(None)


def current_log_ids() -> dict[str, str]:
    """`trace_id` and `span_id` of the span this code runs in, for a log line; {} if none."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
