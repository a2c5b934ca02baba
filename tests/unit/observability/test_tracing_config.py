"""Tracing is configured by the standard OTEL_* variables only, and never globally by accident."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace

from synod import observability
from synod.errors import ConfigError
from synod.observability import tracing

OTEL_VARS = [
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
    observability.shutdown()


def configured_provider() -> object:
    return tracing._provider


def test_no_endpoint_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert observability.configure_from_env("planner", "planner-1") is False
    assert not observability.tracing_enabled()


def test_sdk_disabled_wins_over_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert observability.configure_from_env("planner", "planner-1") is False


@pytest.mark.parametrize(
    ("variable", "protocol", "exporter_module"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", None, "opentelemetry.exporter.otlp.proto.http"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc", "opentelemetry.exporter.otlp.proto.grpc"),
    ],
)
def test_an_endpoint_turns_tracing_on_with_the_chosen_protocol(
    monkeypatch: pytest.MonkeyPatch, variable: str, protocol: str | None, exporter_module: str
) -> None:
    global_before = trace.get_tracer_provider()
    monkeypatch.setenv(variable, "http://127.0.0.1:4318")
    if protocol:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    assert observability.configure_from_env("coder", "coder-1") is True
    provider = configured_provider()
    processor = provider._active_span_processor._span_processors[0]  # type: ignore[attr-defined]
    exporter = processor._batch_processor._exporter
    assert type(exporter).__module__.startswith(exporter_module)
    attributes = provider.resource.attributes  # type: ignore[attr-defined]
    assert attributes["service.name"] == "synod-coder"
    assert attributes["service.instance.id"] == "coder-1"
    # A library call configures Synod's own provider, not the process's.
    assert trace.get_tracer_provider() is global_before


def test_standard_names_and_attributes_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "team-a-coder")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    observability.configure_from_env("coder", "coder-1")
    provider = configured_provider()
    attributes = provider.resource.attributes  # type: ignore[attr-defined]
    assert attributes["service.name"] == "team-a-coder"
    assert attributes["deployment.environment.name"] == "staging"
    assert "0.25" in provider.sampler.get_description()  # type: ignore[attr-defined]


def test_an_unknown_protocol_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"):
        observability.configure_from_env("coder", "coder-1")
