"""One task, one trace, across every service as a process; and the metrics an operator pages on.

The services export to a real OTLP/HTTP receiver (tests/otlp_receiver.py, on
opentelemetry-proto alone) through the standard OTEL_* variables. One task goes
in as a raw Kafka record with only a `traceparent` header (as kcat would send
it), one through the gateway with the HTTP header. Each must come out as the
client's trace: spans from the gateway, planner, researcher, coder, reviewers
and consensus, every parent present, messaging attributes on every Kafka span,
GenAI attributes on every LLM span. Then every service's /metrics is scraped:
the alert rules and dashboards may only name series the services export, the
planner counted both tasks, and consumer lag is back to 0 at rest.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from tests.localteam import local_team, outcomes_by_task, read_topic
from tests.otlp_receiver import OTLPReceiver
from tests.promql import names_in_chart, scraped_names

from synod.dev import jaeger
from synod.dev.localkafka import free_port
from synod.dev.localrun import LocalRun
from synod.transport.topics import RESULTS, TASKS, topic_name

REPLICAS = {
    "consensus": 1,
    "planner": 1,
    "researcher": 1,
    "coder": 1,
    "reviewer": 3,
    "gateway": 1,
    "supervisor": 1,
}
EVERY_AGENT = {"synod-planner", "synod-researcher", "synod-coder", "synod-reviewer"}
KAFKA_SPAN_KINDS = {"producer", "consumer"}


def _traceparent() -> tuple[str, str, str]:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent, f"00-{trace_id}-{parent}-01"


def _post_task(run: LocalRun, traceparent: str) -> str:
    request = urllib.request.Request(
        f"{run.gateway_url}/v1/tasks",
        data=json.dumps({"goal": "Implement a tokenizer"}).encode(),
        method="POST",
        headers={"content-type": "application/json", "traceparent": traceparent},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        task_id: str = json.loads(response.read())["task_id"]
        return task_id


@dataclass
class Backend:
    """Where the services send spans, and how to read a trace back from its query API."""

    otlp_endpoint: str
    query: Callable[[str], list[dict[str, Any]]]


def _query_receiver(receiver: OTLPReceiver) -> Callable[[str], list[dict[str, Any]]]:
    def query(trace_id: str) -> list[dict[str, Any]]:
        try:
            url = f"{receiver.endpoint}/api/traces/{trace_id}"
            with urllib.request.urlopen(url, timeout=5) as response:
                found: list[dict[str, Any]] = json.loads(response.read())["data"]
                return found
        except urllib.error.HTTPError:
            return []

    return query


def _query_jaeger(ui: str) -> Callable[[str], list[dict[str, Any]]]:
    """Jaeger's /api/traces/<id>, in the receiver's span shape."""

    def query(trace_id: str) -> list[dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"{ui}/api/traces/{trace_id}", timeout=5) as response:
                data = json.loads(response.read())["data"]
        except urllib.error.HTTPError:
            return []
        spans = []
        for found in data:
            for span in found["spans"]:
                tags = {t["key"]: t["value"] for t in span["tags"]}
                parents = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
                spans.append(
                    {
                        "service": found["processes"][span["processID"]]["serviceName"],
                        "spanID": span["spanID"],
                        "parentSpanID": parents[0] if parents else "",
                        "operationName": span["operationName"],
                        "kind": tags.pop("span.kind", "internal"),
                        "attributes": tags,
                    }
                )
        return spans

    return query


@pytest.fixture(params=["otlp-proto-receiver", "jaeger"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "jaeger":
        exe = jaeger.binary(Path(__file__).resolve().parents[2])
        if exe is None:
            pytest.skip("no .tools/jaeger: `make jaeger` builds it (minutes; not in make test)")
        ports = {
            name: free_port()
            for name in (
                "otlp_http_port",
                "otlp_grpc_port",
                "query_port",
                "query_grpc_port",
                "health_port",
            )
        }
        running = jaeger.start(tmp_path / "jaeger", ports, exe=exe)
        try:
            yield Backend(running.otlp_http, _query_jaeger(running.ui))
        finally:
            running.stop()
        return
    with OTLPReceiver() as receiver:
        yield Backend(receiver.endpoint, _query_receiver(receiver))


def _ancestry(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    """Services from the root down to `span`, repeats of one service folded."""
    chain = []
    while span is not None:
        chain.append(span["service"])
        span = by_id.get(span["parentSpanID"])  # type: ignore[assignment]
    folded: list[str] = []
    for service in reversed(chain):
        if not folded or folded[-1] != service:
            folded.append(service)
    return folded


def _in_order(wanted: list[str], chain: list[str]) -> bool:
    it = iter(chain)
    return all(any(s == w for s in it) for w in wanted)


async def _whole_trace(
    backend: Backend, trace_id: str, services: set[str], timeout_s: float = 60
) -> list[dict[str, Any]]:
    """The trace once it has every service and every parent (spans arrive in batches)."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans = await asyncio.to_thread(backend.query, trace_id)
        ids = {s["spanID"] for s in spans}
        seen = {s["service"] for s in spans}
        orphans = [s for s in spans if s["parentSpanID"] not in ids]
        decided = [
            s
            for s in spans
            if s["service"] == "synod-planner"
            and s["attributes"].get("synod.message.type") == "Decision"
        ]
        if services <= seen and len(orphans) == 1 and decided:
            return spans
        if time.monotonic() > deadline:
            got = sorted(seen)
            raise AssertionError(f"trace {trace_id}: services {got}, orphans {len(orphans)}")
        await asyncio.sleep(0.5)


def _check_trace(spans: list[dict[str, Any]], client_parent: str, task_id: str) -> None:
    by_id = {s["spanID"]: s for s in spans}
    [root] = [s for s in spans if s["parentSpanID"] not in by_id]
    assert root["parentSpanID"] == client_parent  # the client's span is the task's root
    for span in spans:
        attributes = span["attributes"]
        assert attributes.get("synod.task.id") == task_id, span
        if span["kind"] in KAFKA_SPAN_KINDS:
            assert attributes["messaging.system"] == "kafka", span
            assert attributes["messaging.destination.name"], span
            assert "messaging.destination.partition.id" in attributes, span
            assert "messaging.kafka.offset" in attributes, span
        if span["kind"] == "consumer":
            assert attributes["messaging.consumer.group.name"], span
        if "gen_ai.operation.name" in attributes:
            assert attributes["gen_ai.request.model"], span
            assert attributes["gen_ai.provider.name"], span
            assert attributes["gen_ai.agent.name"], span
            assert attributes["gen_ai.usage.input_tokens"] > 0, span
            assert "gen_ai.usage.output_tokens" in attributes, span
    llm_agents = {s["attributes"]["gen_ai.agent.name"] for s in spans if s["kind"] == "client"}
    assert {"planner", "researcher", "coder", "reviewer"} <= llm_agents
    # The hops in order: in, planned, worked on, voted, decided, back to the planner.
    decided = next(
        s
        for s in spans
        if s["service"] == "synod-planner"
        and s["attributes"].get("synod.message.type") == "Decision"
    )
    chain = _ancestry(decided, by_id)
    assert _in_order(["synod-planner", "synod-reviewer", "synod-consensus", "synod-planner"], chain)
    coded = next(s for s in spans if s["service"] == "synod-coder" and s["kind"] == "consumer")
    assert _in_order(["synod-planner", "synod-coder"], _ancestry(coded, by_id))


def _metrics_urls(run: LocalRun) -> dict[str, str]:
    urls = {"gateway": f"{run.gateway_url}/metrics"}
    for log in Path(run.run_dir).glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"health endpoints up"' in line:
                urls[log.stem] = json.loads(line)["url"] + "/metrics"
    return urls


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


def _sample(text: str, name: str, **labels: str) -> list[float]:
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            found.append(float(line.rsplit(" ", 1)[1]))
    return found


async def test_a_task_is_one_trace_and_every_service_exports_the_paged_metrics(
    kafka: Any, tmp_path: Path, backend: Backend
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": backend.otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "SYNOD_LLM_SIM_LATENCY": "fixed:0.01",
    }
    async with local_team(kafka.bootstrap, tmp_path, "otel", REPLICAS, env) as run:
        raw_trace, raw_parent, raw_header = _traceparent()
        raw_task = f"traced-{raw_trace[:8]}"
        producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                topic_name(TASKS, run.prefix),
                json.dumps({"task_id": raw_task, "goal": "Write a parser"}).encode(),
                key=raw_task.encode(),
                headers=[("traceparent", raw_header.encode())],
            )
        finally:
            await producer.stop()
        http_trace, http_parent, http_header = _traceparent()
        http_task = await asyncio.to_thread(_post_task, run, http_header)

        both = {raw_task, http_task}
        results = await read_topic(run, RESULTS, lambda rs: set(outcomes_by_task(rs)) >= both)
        assert all(
            kind == "TaskCompleted" for task in both for _, kind in outcomes_by_task(results)[task]
        )

        raw_spans = await _whole_trace(backend, raw_trace, EVERY_AGENT | {"synod-consensus"})
        _check_trace(raw_spans, raw_parent, raw_task)
        http_spans = await _whole_trace(
            backend, http_trace, EVERY_AGENT | {"synod-consensus", "synod-gateway"}
        )
        _check_trace(http_spans, http_parent, http_task)
        gateway_send = [
            s for s in http_spans if s["service"] == "synod-gateway" and s["kind"] == "producer"
        ]
        assert gateway_send
        assert gateway_send[0]["parentSpanID"] == http_parent

        # Metrics, scraped from the live services.
        deadline = time.monotonic() + 30
        while True:
            pages = {
                name: await asyncio.to_thread(_scrape, url)
                for name, url in _metrics_urls(run).items()
            }
            lags = [
                v for text in pages.values() for v in _sample(text, "synod_consumer_lag_messages")
            ]
            if lags and max(lags) == 0:
                break
            assert time.monotonic() < deadline, f"lag never settled at 0: {max(lags or [-1])}"
            await asyncio.sleep(0.5)
    assert {"planner-0", "coder-0", "consensus-0", "gateway"} <= set(pages), sorted(pages)
    planner = pages["planner-0"]
    assert _sample(planner, "synod_tasks_finished_total", outcome="completed") == [2.0]
    assert _sample(planner, "synod_task_duration_seconds_count", outcome="completed") == [2.0]
    assert _sample(pages["coder-0"], "synod_transport_hop_latency_seconds_count")
    assert _sample(pages["consensus-0"], "synod_consumer_lag_messages")  # its own consumer too
    tokens = _sample(pages["coder-0"], "synod_llm_tokens_total", role="coder", kind="input")
    assert tokens
    assert tokens[0] > 0
    exported = {name for text in pages.values() for name in scraped_names(text)}
    missing = sorted(names_in_chart() - exported)
    assert not missing, f"alerts or dashboards name series no service exports: {missing}"
