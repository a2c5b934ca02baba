"""Real network faults for local runs: cut, slow and heal a zone's TCP paths to the broker.

A local broker started with zones (`localkafka.start(..., zones=N)`) has one
listener per zone, advertised at a port of its own. `NetFaults.start` runs a
toxiproxy server (built into .tools/ by `make tools`) with one proxy per zone,
listening on that advertised port and forwarding to the zone's listener. An
instance bootstrapped at `bootstrap(zone)` learns the advertised port from the
broker's metadata and so opens every later connection (group coordinator,
partition leaders) through the same proxy: cutting the proxy cuts all of them,
which a proxy on the bootstrap address alone would not.

The API is the one tests and `synod chaos` call, and is kept small and stable:

    with NetFaults.start(broker_info, run_dir) as net:
        env = {"SYNOD_BOOTSTRAP": net.bootstrap("z1")}
        net.cut("z1")                       # refuse and drop every connection
        net.slow("z2", latency_ms=800)      # gray failure: still up, but slow
        net.slow("z3", timeout_ms=0)        # black hole: connections hang
        net.heal("z1")                      # back to a clean path
        net.heal_all()

Every call is one HTTP request to the local toxiproxy API and takes effect
before it returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synod.dev.localkafka import BrokerInfo, free_port, project_root

TOXIPROXY_ENV = "SYNOD_TOXIPROXY"


class NetFaultsError(RuntimeError):
    """The proxy could not be started or refused a change; the message says what to fix."""


@dataclass(frozen=True)
class Zone:
    """One zone: clients connect to `port` (the proxy); the proxy forwards to `upstream_port`."""

    name: str
    port: int
    upstream_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def toxiproxy_binary() -> Path:
    """The toxiproxy server: $SYNOD_TOXIPROXY, else .tools/toxiproxy-server (`make tools`)."""
    configured = os.environ.get(TOXIPROXY_ENV)
    path = Path(configured) if configured else project_root() / ".tools" / "toxiproxy-server"
    if not path.exists():
        raise NetFaultsError(
            f"no toxiproxy server at {path}: run `make tools` (go install into .tools/) "
            f"or set {TOXIPROXY_ENV} to its path"
        )
    return path


def zones_of(broker: BrokerInfo) -> dict[str, Zone]:
    if not broker.zones:
        raise NetFaultsError(
            "this broker has no zones: start it with localkafka.start(..., zones=N)"
        )
    return {name: Zone(name, ports[1], ports[0]) for name, ports in broker.zones.items()}


class NetFaults:
    """The zones of one broker behind one toxiproxy server."""

    def __init__(self, api_url: str, zones: Mapping[str, Zone]) -> None:
        self.api_url = api_url.rstrip("/")
        self.zones = dict(zones)

    @classmethod
    @contextlib.contextmanager
    def start(cls, broker: BrokerInfo, run_dir: Path) -> Iterator[NetFaults]:
        """A toxiproxy server with a healthy proxy per zone of `broker`; stopped after."""
        zones = zones_of(broker)
        run_dir.mkdir(parents=True, exist_ok=True)
        api_port = free_port()
        log = open(run_dir / "toxiproxy.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [str(toxiproxy_binary()), "-host", "127.0.0.1", "-port", str(api_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        net = cls(f"http://127.0.0.1:{api_port}", zones)
        try:
            net._wait_ready(proc)
            for zone in zones.values():
                net._request(
                    "POST",
                    "/proxies",
                    {
                        "name": zone.name,
                        "listen": f"127.0.0.1:{zone.port}",
                        "upstream": f"127.0.0.1:{zone.upstream_port}",
                        "enabled": True,
                    },
                )
            yield net
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def bootstrap(self, zone: str) -> str:
        """The address a zone's instances use as SYNOD_BOOTSTRAP."""
        return self._zone(zone).bootstrap

    def cut(self, zone: str) -> None:
        """Partition the zone: its connections are closed and new ones refused."""
        self._request("POST", f"/proxies/{self._zone(zone).name}", {"enabled": False})

    def slow(
        self,
        zone: str,
        *,
        latency_ms: int = 0,
        jitter_ms: int = 0,
        bandwidth_kbps: int | None = None,
        timeout_ms: int | None = None,
    ) -> None:
        """A gray failure, both directions: added latency (± jitter), a bandwidth cap
        (KB/s), or `timeout_ms` (data stops; the connection closes after it, or never
        when 0: a black hole). Replaces earlier toxics of the zone."""
        name = self._zone(zone).name
        self._clear_toxics(name)
        toxics: list[tuple[str, dict[str, int]]] = []
        if latency_ms or jitter_ms:
            toxics.append(("latency", {"latency": latency_ms, "jitter": jitter_ms}))
        if bandwidth_kbps is not None:
            toxics.append(("bandwidth", {"rate": bandwidth_kbps}))
        if timeout_ms is not None:
            toxics.append(("timeout", {"timeout": timeout_ms}))
        if not toxics:
            raise NetFaultsError("slow() needs latency_ms, jitter_ms, bandwidth_kbps or timeout_ms")
        for kind, attributes in toxics:
            for stream in ("upstream", "downstream"):
                self._request(
                    "POST",
                    f"/proxies/{name}/toxics",
                    {
                        "name": f"{kind}_{stream}",
                        "type": kind,
                        "stream": stream,
                        "toxicity": 1.0,
                        "attributes": attributes,
                    },
                )

    def heal(self, zone: str) -> None:
        """Back to a clean path: enabled, no toxics."""
        name = self._zone(zone).name
        self._clear_toxics(name)
        self._request("POST", f"/proxies/{name}", {"enabled": True})

    def heal_all(self) -> None:
        for zone in self.zones:
            self.heal(zone)

    def state(self) -> dict[str, dict[str, Any]]:
        """zone -> {"enabled": bool, "toxics": [type, ...]}, as the proxy reports it."""
        proxies = self._request("GET", "/proxies")
        return {
            name: {
                "enabled": bool(doc.get("enabled")),
                "toxics": sorted({t["type"] for t in doc.get("toxics") or []}),
            }
            for name, doc in proxies.items()
            if name in self.zones
        }

    # Plumbing

    def _zone(self, zone: str) -> Zone:
        try:
            return self.zones[zone]
        except KeyError:
            raise NetFaultsError(
                f"unknown zone {zone!r}; the zones are {', '.join(sorted(self.zones))}"
            ) from None

    def _clear_toxics(self, name: str) -> None:
        for toxic in self._request("GET", f"/proxies/{name}/toxics"):
            self._request("DELETE", f"/proxies/{name}/toxics/{toxic['name']}")

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise NetFaultsError(f"toxiproxy exited at start (status {proc.returncode})")
            with contextlib.suppress(OSError):
                self._request("GET", "/version")
                return
            time.sleep(0.1)
        raise NetFaultsError(f"toxiproxy did not answer at {self.api_url} within {timeout_s}s")

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise NetFaultsError(f"toxiproxy {method} {path}: {exc.code} {detail}") from exc
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text
