"""A real OTLP/HTTP trace receiver for tests and benchmarks, on opentelemetry-proto alone.

It speaks the OTLP/HTTP protocol as the OpenTelemetry Collector does (POST
/v1/traces, `application/x-protobuf`, optionally gzip, an
ExportTraceServiceResponse back), decodes every span with the protocol's own
generated classes and keeps them, and answers queries like a trace backend's
API: `GET /api/traces/<trace id hex>` gives that trace's spans as JSON. It uses
no Synod code, so what it sees is what any collector would see.
"""

from __future__ import annotations

import gzip
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    events: tuple[str, ...]
    links: tuple[tuple[str, str], ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "traceID": self.trace_id,
            "spanID": self.span_id,
            "parentSpanID": self.parent_span_id,
            "operationName": self.name,
            "kind": self.kind,
            "attributes": self.attributes,
            "events": list(self.events),
        }


@dataclass
class Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_trace: dict[str, list[ReceivedSpan]] = field(default_factory=lambda: defaultdict(list))
    requests: int = 0
    spans: int = 0

    def add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=service,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=KINDS.get(span.kind, str(span.kind)),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            events=tuple(e.name for e in span.events),
                            links=tuple((lk.trace_id.hex(), lk.span_id.hex()) for lk in span.links),
                        )
                    )
        with self.lock:
            self.requests += 1
            self.spans += len(found)
            for span in found:
                self.by_trace[span.trace_id].append(span)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.by_trace.get(trace_id, ()))


class OTLPReceiver:
    """`with OTLPReceiver() as rx:` serves on 127.0.0.1:<free port>; `rx.endpoint` is its URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = Store()
        store = self.store

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: tests print what matters
                pass

            def do_POST(self) -> None:
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if "protobuf" not in self.headers.get("Content-Type", ""):
                    self.send_error(415, "only application/x-protobuf here")
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                store.add(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self) -> None:
                import json

                prefix = "/api/traces/"
                if not self.path.startswith(prefix):
                    self.send_error(404)
                    return
                spans = store.trace(self.path[len(prefix) :].lower())
                data = json.dumps({"data": [s.as_json() for s in spans]}).encode()
                self.send_response(200 if spans else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def main() -> None:
    """`python -m tests.otlp_receiver [PORT]`: serve until killed; prints the endpoint first."""
    import signal
    import sys

    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # so sigwait, not the default, takes them
    receiver = OTLPReceiver(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    with receiver:
        print(receiver.endpoint, flush=True)
        signal.sigwait(stop)
        print(f"spans received: {receiver.store.spans}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
