"""A local Jaeger (v2, all-in-one, in-memory) for `synod up --jaeger` and the tests that use it.

Jaeger is a Go program: `make jaeger` builds it into .tools/jaeger (it is not
on the default path: the build takes minutes and 1.3 GB of Go modules). A
build from the Go module has the OTLP receivers and the query API
(`/api/traces/<id>`, `/api/traces?service=...`) but not the web UI, whose
assets Jaeger's releases embed from a separate JavaScript build;
`SYNOD_JAEGER` names another binary (a Jaeger release has the UI), and
hack/trace_svg.py draws a trace from the API. It listens on 127.0.0.1 only, on
the ports given here; nothing else (no Jaeger Thrift, no Zipkin, no
self-telemetry port, no tracing of itself).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from synod.errors import ConfigError

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    enable_tracing: false  # on by default: it would trace itself to localhost:4317
    storage:
      traces: memory
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}
  jaeger_storage:
    backends:
      memory:
        memory:
          max_traces: 100000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health_port}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc_port}
      http:
        endpoint: 127.0.0.1:{otlp_http_port}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memory
"""


# Jaeger's own defaults, the ones its users know (`synod up --jaeger`); tests pick free ones.
DEFAULT_PORTS = {
    "otlp_http_port": 4318,
    "otlp_grpc_port": 4317,
    "query_port": 16686,
    "query_grpc_port": 16685,
    "health_port": 13133,
}


def binary(root: Path | None = None) -> Path | None:
    """The Jaeger to run: $SYNOD_JAEGER, else .tools/jaeger under `root` (default: cwd)."""
    named = os.environ.get("SYNOD_JAEGER")
    if named:
        return Path(named)
    path = (root or Path.cwd()) / ".tools" / "jaeger"
    return path if path.exists() else None


@dataclass
class Jaeger:
    proc: subprocess.Popen[bytes]
    otlp_http: str  # where services send: OTEL_EXPORTER_OTLP_ENDPOINT
    ui: str  # the query API (/api/traces/<trace id>), and the UI if the binary has it

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(run_dir: Path, ports: dict[str, int], *, exe: Path | None = None) -> Jaeger:
    """Start Jaeger with `ports` (otlp_http_port, otlp_grpc_port, query_port,
    query_grpc_port, health_port); returns once its health check answers (30 s bound)."""
    exe = exe or binary()
    if exe is None or not exe.exists():
        raise ConfigError("no Jaeger binary: run `make jaeger` (or set SYNOD_JAEGER)")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "jaeger.yaml"
    config.write_text(CONFIG.format(**ports))
    log = (run_dir / "jaeger.log").open("wb")
    # Jaeger's own OTel SDK reads OTEL_* too: without this it would trace itself
    # into whatever endpoint our environment names (or dial :4317 for nothing).
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_SDK_DISABLED"] = "true"
    env["OTEL_TRACES_EXPORTER"] = "none"
    proc = subprocess.Popen([str(exe), "--config", str(config)], stdout=log, stderr=log, env=env)
    jaeger = Jaeger(
        proc,
        otlp_http=f"http://127.0.0.1:{ports['otlp_http_port']}",
        ui=f"http://127.0.0.1:{ports['query_port']}",
    )
    health = f"http://127.0.0.1:{ports['health_port']}/status"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jaeger exited with {proc.returncode}; see {run_dir}/jaeger.log")
        try:
            with urllib.request.urlopen(health, timeout=1) as response:
                if response.status == 200:
                    return jaeger
        except OSError:
            pass
        if time.monotonic() > deadline:
            jaeger.stop()
            raise RuntimeError(f"jaeger not healthy after 30 s; see {run_dir}/jaeger.log")
        time.sleep(0.2)
