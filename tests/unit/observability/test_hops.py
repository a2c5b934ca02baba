"""The spans of a hop (publish, process, LLM call), their joins, and the cost-free off path.

Spans go to the SDK's in-memory exporter through `use_tracer_provider`, the
same door a host embedding Synod uses; the global provider is never touched.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from synod import observability
from synod.core.resilience.registry import BreakerBoard
from synod.errors import SynodError
from synod.llm import LLMRequest
from synod.llm.faults import Latency
from synod.llm.resilient import ResilientBackend
from synod.llm.sim import SimBackend
from synod.observability.hops import process_span, publish_span
from synod.service.logs import JsonFormatter
from synod.wire import Envelope, Sender, StepRequested, TaskSubmitted
from synod.wire.messages import TraceContext

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"
SENDER = Sender(role="planner", instance="planner-1")


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int = 0


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability.use_tracer_provider(provider)
    yield exporter
    observability.use_tracer_provider(None)


def submitted(trace_context: TraceContext | None = None) -> Envelope[TaskSubmitted]:
    return Envelope.new(
        TaskSubmitted(goal="g"),
        sender=Sender(role="gateway", instance="gw"),
        task_id="t1",
        trace=trace_context or TraceContext(),
    )


def record_of(envelope: Envelope[object], topic: str, offset: int = 7) -> Record:
    return Record(topic, 2, offset, b"t1", (("traceparent", envelope.trace.traceparent.encode()),))


def test_off_hands_back_the_same_envelope_and_makes_no_span() -> None:
    observability.use_tracer_provider(None)
    envelope = submitted(TraceContext(traceparent=CLIENT_PARENT))
    with publish_span("synod.tasks", envelope) as hop:
        assert hop.envelope is envelope
        hop.sent(None)
    with process_span(record_of(envelope, "synod.tasks"), envelope) as given:
        assert given is envelope
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_client_trace_is_the_task_trace_and_each_hop_joins_the_last(
    spans: InMemorySpanExporter,
) -> None:
    envelope = submitted(TraceContext(traceparent=CLIENT_PARENT))
    with publish_span("synod.tasks", envelope) as hop:
        sent = hop.envelope
    assert sent.trace.traceparent.split("-")[1] == CLIENT_TRACE
    assert sent.trace.traceparent != CLIENT_PARENT  # now the producer span's context

    record = record_of(sent, "synod.tasks")
    with process_span(record, sent, "synod.planner") as given:
        step = Envelope.new(
            StepRequested(step_id="s1", role="coder"), sender=SENDER, task_id="t1", attempt=2
        )
        with publish_span("synod.work.coder", step, b"t1/s1") as inner:
            inner.sent(type("Meta", (), {"partition": 3, "offset": 41})())
    assert given is sent

    by_name = {s.name: s for s in spans.get_finished_spans()}
    first, process, second = (
        by_name["send synod.tasks"],
        by_name["process synod.tasks"],
        by_name["send synod.work.coder"],
    )
    assert {s.context.trace_id for s in by_name.values()} == {int(CLIENT_TRACE, 16)}
    assert first.parent is not None
    assert first.parent.span_id == 0x00F067AA0BA902B7
    assert process.parent is not None
    assert process.parent.span_id == first.context.span_id
    assert second.parent is not None
    assert second.parent.span_id == process.context.span_id
    assert first.kind == SpanKind.PRODUCER
    assert process.kind == SpanKind.CONSUMER
    assert process.attributes is not None
    assert second.attributes is not None
    assert process.attributes["messaging.system"] == "kafka"
    assert process.attributes["messaging.destination.name"] == "synod.tasks"
    assert process.attributes["messaging.destination.partition.id"] == "2"
    assert process.attributes["messaging.kafka.offset"] == 7
    assert process.attributes["messaging.consumer.group.name"] == "synod.planner"
    assert process.attributes["synod.task.id"] == "t1"
    assert second.attributes["synod.step.id"] == "s1"
    assert second.attributes["synod.attempt"] == 2
    assert second.attributes["messaging.kafka.message.key"] == "t1/s1"
    assert second.attributes["messaging.kafka.offset"] == 41


def test_without_a_client_trace_the_first_hop_starts_one(spans: InMemorySpanExporter) -> None:
    with publish_span("synod.tasks", submitted()) as hop:
        pass
    (span,) = spans.get_finished_spans()
    assert span.parent is None
    version, trace_id, span_id, flags = hop.envelope.trace.traceparent.split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{span.context.trace_id:032x}",
        f"{span.context.span_id:016x}",
    )
    assert int(flags, 16) & 1  # sampled


def test_a_kafka_header_alone_names_the_trace(spans: InMemorySpanExporter) -> None:
    # kcat -H traceparent=...: the value has no trace, the header has.
    envelope = submitted()
    record = Record("synod.tasks", 0, 1, b"t1", (("traceparent", CLIENT_PARENT.encode()),))
    with process_span(record, envelope) as given:
        pass
    assert given.trace.traceparent == CLIENT_PARENT  # what the handler derives stays in it
    (span,) = spans.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == CLIENT_TRACE


def test_a_failing_handler_marks_its_span_and_counts_its_class(
    spans: InMemorySpanExporter,
) -> None:
    class Broke(SynodError):
        error_class = "permanent"

    labels = {"topic": "synod.work.coder", "error_class": "permanent"}
    before = REGISTRY.get_sample_value("synod_transport_handler_errors_total", labels) or 0
    envelope = submitted(TraceContext(traceparent=CLIENT_PARENT))
    with (
        pytest.raises(Broke),
        process_span(record_of(envelope, "synod.work.coder"), envelope),
    ):
        raise Broke("no")
    after = REGISTRY.get_sample_value("synod_transport_handler_errors_total", labels)
    assert after == before + 1
    (span,) = spans.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert [e.name for e in span.events] == ["exception"]


def test_log_lines_inside_a_span_carry_its_ids(spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("planner", "planner-1"))
    logger = logging.getLogger("synod.test.tracing")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("outside")
        with publish_span("synod.tasks", submitted()):
            logger.warning("inside")
    finally:
        logger.removeHandler(handler)
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    (span,) = spans.get_finished_spans()
    assert "trace_id" not in outside
    assert inside["trace_id"] == f"{span.context.trace_id:032x}"
    assert inside["span_id"] == f"{span.context.span_id:016x}"


async def test_an_llm_call_is_a_genai_span_inside_its_hop(spans: InMemorySpanExporter) -> None:
    llm = ResilientBackend(
        {"sim": SimBackend(latency=Latency("fixed", 0), model="sim-small")},
        "sim",
        board=BreakerBoard(),
    )
    request = LLMRequest(role="coder", task_id="t1", step_id="s1", prompt="write", attempt=1)
    labels = {"role": "coder", "model": "sim-small", "kind": "input"}
    before = REGISTRY.get_sample_value("synod_llm_tokens_total", labels) or 0
    with publish_span("synod.work.coder", submitted()):
        response = await llm.complete(request)
    hop, call = sorted(spans.get_finished_spans(), key=lambda s: s.name)[::-1]
    assert call.name == "chat sim-small"
    assert call.kind == SpanKind.CLIENT
    assert call.parent is not None
    assert call.parent.span_id == hop.context.span_id
    assert call.attributes is not None
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.provider.name"] == "sim"
    assert call.attributes["gen_ai.request.model"] == "sim-small"
    assert call.attributes["gen_ai.agent.name"] == "coder"
    assert call.attributes["gen_ai.usage.input_tokens"] == response.usage.input_tokens > 0
    assert call.attributes["gen_ai.usage.output_tokens"] == response.usage.output_tokens
    assert call.attributes["synod.step.id"] == "s1"
    after = REGISTRY.get_sample_value("synod_llm_tokens_total", labels)
    assert after == before + response.usage.input_tokens
