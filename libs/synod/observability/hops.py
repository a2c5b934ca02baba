"""The spans of a task's hops: producer and process spans per Kafka record, one per LLM call.

One trace per task: the W3C `traceparent` a client gave (an HTTP header at the
gateway, a Kafka header or the envelope's `trace` on synod.tasks) is the task's
trace; without one, the first hop starts it. Each hop then joins the next:

- `publish_span` (the Publisher's publish path): a PRODUCER span `send <topic>`,
  child of the span the code runs in (a handler's process span), else of the
  envelope's own trace context (work started outside a handler: timers,
  rebuilds), else a new root. The span's context replaces the envelope's
  `trace` and so goes out in both the value and the `traceparent` header: the
  creation context of the OTel messaging conventions.
- `process_span` (the Dispatcher, around the handler): a CONSUMER span
  `process <topic>` whose parent is the creation context in the record's
  headers, with the handler's whole work inside it. (The aiokafka
  instrumentation makes a receive span that ends when `getmany` returns, before
  any handler runs, and it knows nothing of our key-ordered dispatch, so the
  handler's spans would hang off nothing; we make the span ourselves.)
- `llm_call` (synod.llm's resilient wrapper): a GenAI CLIENT span `chat <model>`
  with retries, breaker rejections and fallbacks as events.

Attributes follow the OpenTelemetry semantic conventions v1.37.0: messaging
(`messaging.system=kafka`, destination, partition, key, offset, consumer group)
and GenAI (`gen_ai.operation.name`, `gen_ai.provider.name`,
`gen_ai.request.model`, `gen_ai.usage.*_tokens`, `gen_ai.agent.name`; that
version is where `gen_ai.provider.name` replaced `gen_ai.system`). Every span
carries `synod.task.id`, and `synod.step.id` / `synod.attempt` where they exist.

With tracing off each function takes one branch and hands back what it got
(metrics are still recorded: they are how an operator pages).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from synod.errors import ErrorClass, SynodError
from synod.observability import metrics
from synod.observability import tracing as _tracing
from synod.wire import Envelope
from synod.wire.messages import TraceContext

# W3C trace context only, and our own instance: the process's global propagator
# is the host's business.
PROPAGATOR = TraceContextTextMapPropagator()
SEMCONV_VERSION = "1.37.0"


class RecordLike(Protocol):
    """What a hop needs of a consumed record (synod.transport's RawRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]: ...
    @property
    def timestamp_ms(self) -> int: ...


def _task_attributes(envelope: Envelope[Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.message.id": envelope.message_id,
        "synod.message.type": envelope.type,
        "synod.attempt": envelope.attempt,
    }
    if envelope.task_id is not None:
        attributes["synod.task.id"] = envelope.task_id
    step_id = getattr(envelope.body, "step_id", None)
    if step_id:
        attributes["synod.step.id"] = step_id
    return attributes


def _key_text(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", "replace")


def _context_of(trace_context: TraceContext) -> otel_context.Context:
    carrier = {"traceparent": trace_context.traceparent}
    if trace_context.tracestate:
        carrier["tracestate"] = trace_context.tracestate
    return PROPAGATOR.extract(carrier, context=otel_context.Context())


def _trace_context_of(span: Span, tracestate: str) -> TraceContext:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return TraceContext(
        traceparent=carrier.get("traceparent", ""),
        tracestate=carrier.get("tracestate", tracestate),
    )


def header_trace(headers: tuple[tuple[str, bytes], ...]) -> TraceContext:
    """The W3C trace context of a record's Kafka headers (empty if it has none)."""
    found = {"traceparent": "", "tracestate": ""}
    for name, value in headers:
        if name in found and value:
            found[name] = value.decode("ascii", "replace")
    return TraceContext(**found)


def error_class_of(exc: BaseException) -> ErrorClass:
    return exc.error_class if isinstance(exc, SynodError) else "transient"


class PublishHop:
    """The envelope to send (its trace is the producer span's) and the span to finish."""

    __slots__ = ("envelope", "span")

    def __init__(self, envelope: Envelope[Any], span: Span | None) -> None:
        self.envelope = envelope
        self.span = span

    def sent(self, metadata: Any) -> None:
        """Note where the broker put the record (aiokafka's RecordMetadata)."""
        if self.span is None or metadata is None:
            return
        partition = getattr(metadata, "partition", None)
        offset = getattr(metadata, "offset", None)
        if partition is not None:
            self.span.set_attribute("messaging.destination.partition.id", str(partition))
        if offset is not None:
            self.span.set_attribute("messaging.kafka.offset", int(offset))

    def end(self, error: BaseException | None = None) -> None:
        """End a span from `start_publish` (an error marks it failed)."""
        if self.span is None:
            return
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self.span.end()


def _producer_span_args(
    topic: str, envelope: Envelope[Any], key: bytes | None
) -> tuple[otel_context.Context | None, dict[str, Any]] | None:
    """(parent, attributes) of a send's producer span; None: the send is not traced."""
    current = trace.get_current_span().get_span_context()
    if not current.is_valid and envelope.task_id is None and not envelope.trace.traceparent:
        # Heartbeats and other messages of no task: tracing them would only make
        # a new one-span trace per second per instance.
        return None
    parent = None if current.is_valid else _context_of(envelope.trace)
    attributes = _task_attributes(envelope)
    attributes.update(
        {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
        }
    )
    key_text = _key_text(key if key is not None else envelope.key)
    if key_text is not None:
        attributes["messaging.kafka.message.key"] = key_text
    return parent, attributes


@contextmanager
def publish_span(
    topic: str, envelope: Envelope[Any], key: bytes | None = None
) -> Iterator[PublishHop]:
    """A producer span around one send; use `hop.envelope` (it carries the span's context)."""
    tracer = _tracing.tracer()
    args = None if tracer is None else _producer_span_args(topic, envelope, key)
    if tracer is None or args is None:
        yield PublishHop(envelope, None)
        return
    parent, attributes = args
    with tracer.start_as_current_span(
        f"send {topic}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        traced = envelope.model_copy(
            update={"trace": _trace_context_of(span, envelope.trace.tracestate)}
        )
        yield PublishHop(traced, span)


def start_publish(topic: str, envelope: Envelope[Any], key: bytes | None = None) -> PublishHop:
    """`publish_span` for a send acked later (a batch, a transaction): the span is
    not made current, so the sends after it are not its children; the caller
    calls `hop.sent(metadata)` and `hop.end()`."""
    tracer = _tracing.tracer()
    args = None if tracer is None else _producer_span_args(topic, envelope, key)
    if tracer is None or args is None:
        return PublishHop(envelope, None)
    parent, attributes = args
    span = tracer.start_span(
        f"send {topic}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
    )
    traced = envelope.model_copy(
        update={"trace": _trace_context_of(span, envelope.trace.tracestate)}
    )
    return PublishHop(traced, span)


@contextmanager
def process_span(
    record: RecordLike, envelope: Envelope[Any], group: str = ""
) -> Iterator[Envelope[Any]]:
    """Around one handler call: the hop's latency, its errors by class, its process span.

    Yields the envelope to hand to the handler: the same one, with the headers'
    trace context filled in when its own is empty (a client that set only the
    Kafka header, kcat for instance), so what the handler derives from it stays
    in the task's trace.
    """
    if record.timestamp_ms > 0:
        waited = time.time() - record.timestamp_ms / 1000
        metrics.HOP_LATENCY.labels(record.topic).observe(max(0.0, waited))
    from_headers = header_trace(record.headers)
    if from_headers.traceparent and not envelope.trace.traceparent:
        envelope = envelope.model_copy(update={"trace": from_headers})
    tracer = _tracing.tracer()
    try:
        if tracer is None:
            yield envelope
            return
        creation = from_headers if from_headers.traceparent else envelope.trace
        if not creation.traceparent and envelope.task_id is None:
            yield envelope  # a heartbeat: no task, no trace (see publish_span)
            return
        attributes = _task_attributes(envelope)
        attributes.update(
            {
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
            }
        )
        if group:
            attributes["messaging.consumer.group.name"] = group
        key_text = _key_text(record.key)
        if key_text is not None:
            attributes["messaging.kafka.message.key"] = key_text
        with tracer.start_as_current_span(
            f"process {record.topic}",
            context=_context_of(creation),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ):
            yield envelope
    except Exception as exc:
        metrics.record_handler_error(record.topic, error_class_of(exc))
        raise


def span_event(name: str, attributes: dict[str, Any] | None = None) -> None:
    """An event on the span this code runs in (a retry, a rejection, a fallback)."""
    if _tracing.tracer() is None:
        return
    trace.get_current_span().add_event(name, attributes or {})


class LLMCall:
    """One model call in progress: `done(response)` records what it cost."""

    __slots__ = ("model", "role", "span", "started")

    def __init__(self, role: str, model: str, span: Span | None) -> None:
        self.role = role
        self.model = model
        self.span = span
        self.started = time.monotonic()

    def done(self, response: Any) -> None:
        usage = response.usage
        model = response.model or self.model
        _count_usage(self.role, model, usage)
        metrics.LLM_CALLS.labels(self.role, model, "ok").inc()
        metrics.LLM_DURATION.labels(self.role, "ok").observe(time.monotonic() - self.started)
        if self.span is None:
            return
        self.span.set_attributes(
            {
                "gen_ai.response.model": model,
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "synod.llm.cost_usd": usage.cost_usd,
            }
        )
        if response.stop_reason:
            self.span.set_attribute("gen_ai.response.finish_reasons", [response.stop_reason])
        if response.retries:
            self.span.add_event("synod.llm.retried", {"synod.llm.retries": response.retries})

    def failed(self, exc: BaseException) -> None:
        error_class = error_class_of(exc)
        usage = getattr(exc, "usage", None)
        if usage is not None:
            _count_usage(self.role, self.model, usage)
        metrics.LLM_CALLS.labels(self.role, self.model, error_class).inc()
        metrics.LLM_DURATION.labels(self.role, error_class).observe(time.monotonic() - self.started)
        if self.span is not None:
            self.span.set_attribute("error.type", type(exc).__name__)
            self.span.set_attribute("synod.error_class", error_class)


def _count_usage(role: str, model: str, usage: Any) -> None:
    if usage.input_tokens:
        metrics.LLM_TOKENS.labels(role, model, "input").inc(usage.input_tokens)
    if usage.output_tokens:
        metrics.LLM_TOKENS.labels(role, model, "output").inc(usage.output_tokens)
    if usage.cost_usd:
        metrics.LLM_COST.labels(role, model).inc(usage.cost_usd)


@contextmanager
def llm_call(
    *,
    role: str,
    provider: str,
    model: str,
    task_id: str,
    step_id: str,
    attempt: int,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> Iterator[LLMCall]:
    """A GenAI `chat` span around one call of the resilient wrapper (fallbacks inside it)."""
    tracer = _tracing.tracer()
    if tracer is None:
        call = LLMCall(role, model, None)
        try:
            yield call
        except Exception as exc:
            call.failed(exc)
            raise
        return
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.agent.name": role,
        "synod.task.id": task_id,
        "synod.step.id": step_id,
        "synod.attempt": attempt,
    }
    if max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    if temperature is not None:
        attributes["gen_ai.request.temperature"] = temperature
    with tracer.start_as_current_span(
        f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        call = LLMCall(role, model, span)
        try:
            yield call
        except Exception as exc:
            call.failed(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
            raise
