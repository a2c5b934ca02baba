"""Session fixtures shared by every suite.

The Kafka broker: tests that need one take the `kafka` fixture. It uses the
broker named by SYNOD_BOOTSTRAP when that is set (for instance one started by
`make kafka-up`), and otherwise starts a real broker of its own for this test
session and stops it at the end. No test depends on a broker started by hand.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from synod.dev import localkafka
from synod.dev.netfaults import NetFaults


@dataclass(frozen=True)
class KafkaUnderTest:
    bootstrap: str
    version: str
    started_by_tests: bool
    pid: int | None
    # The broker's run directory when the tests started it (chaos restarts it there).
    run_dir: Path | None = None


_broker: KafkaUnderTest | None = None
_broker_info: localkafka.BrokerInfo | None = None

# Listeners the session broker gets for synod.dev.netfaults (one zone each, z1..);
# an unused listener costs the broker nothing but a port.
NET_ZONES = 8


def _describe_external(bootstrap: str) -> KafkaUnderTest:
    # A broker from `make kafka-up` records its version; another one does not tell.
    info = localkafka.running(localkafka.default_home() / "run")
    if info is not None and info.bootstrap == bootstrap:
        return KafkaUnderTest(bootstrap, info.version, False, info.pid)
    return KafkaUnderTest(bootstrap, "unknown (external broker)", False, None)


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaUnderTest]:
    global _broker, _broker_info
    external = os.environ.get("SYNOD_BOOTSTRAP")
    if external:
        localkafka.wait_ready(external, timeout_s=30)
        _broker = _describe_external(external)
        yield _broker
        return
    version = os.environ.get("SYNOD_KAFKA_VERSION", localkafka.DEFAULT_VERSION)
    with tempfile.TemporaryDirectory(prefix="synod-test-kafka-") as tmp:
        run_dir = Path(tmp)
        info = localkafka.start(run_dir, version=version, zones=NET_ZONES)
        _broker_info = info
        _broker = KafkaUnderTest(info.bootstrap, info.version, True, info.pid, run_dir)
        try:
            yield _broker
        finally:
            localkafka.stop(run_dir)


@pytest.fixture(scope="session")
def _netfaults_server(kafka: KafkaUnderTest) -> Iterator[NetFaults]:
    if _broker_info is None or not _broker_info.zones:
        pytest.skip("network zones need the session's own broker (unset SYNOD_BOOTSTRAP)")
    with (
        tempfile.TemporaryDirectory(prefix="synod-test-toxiproxy-") as tmp,
        NetFaults.start(_broker_info, Path(tmp)) as net,
    ):
        yield net


@pytest.fixture
def netfaults(_netfaults_server: NetFaults) -> Iterator[NetFaults]:
    """The session broker's zones behind toxiproxy (synod.dev.netfaults), healed after
    each test so no cut outlives the test that made it."""
    _netfaults_server.heal_all()
    yield _netfaults_server
    _netfaults_server.heal_all()


@dataclass(frozen=True)
class ClusterUnderTest:
    """A 3-node KRaft cluster of this test session: node ids 1..3, kill and restart them."""

    info: localkafka.ClusterInfo
    run_dir: Path

    @property
    def bootstrap(self) -> str:
        return self.info.bootstrap

    def kill(self, node_id: int) -> None:
        localkafka.kill_node(self.run_dir, node_id)

    def stop(self, node_id: int) -> None:
        localkafka.stop_node(self.run_dir, node_id)

    def restart(self, node_id: int, timeout_s: float = 300.0) -> None:
        # A JVM recovering its logs after a SIGKILL takes minutes at load 30+ here.
        localkafka.restart_node(self.run_dir, node_id, timeout_s)

    def pids(self) -> list[int]:
        current = localkafka.read_cluster(self.run_dir)
        return current.pids if current is not None else []


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[ClusterUnderTest]:
    """Three brokers (three JVMs, a controller quorum of three), started only for the
    tests that ask for it: it costs ~15 s and ~0.6 GiB, so keep such tests few."""
    version = os.environ.get("SYNOD_KAFKA_VERSION", localkafka.DEFAULT_VERSION)
    with tempfile.TemporaryDirectory(prefix="synod-test-cluster-") as tmp:
        run_dir = Path(tmp)
        info = localkafka.start_cluster(run_dir, brokers=3, version=version)
        try:
            yield ClusterUnderTest(info, run_dir)
        finally:
            localkafka.stop_cluster(run_dir)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _broker is None:
        terminalreporter.write_line("kafka broker: not used by this run")
        return
    origin = "started by the test session" if _broker.started_by_tests else "SYNOD_BOOTSTRAP"
    terminalreporter.write_line(
        f"kafka broker: Apache Kafka {_broker.version} (KRaft) at {_broker.bootstrap}, {origin}"
    )


# The suite a test belongs to is the folder it lives in: one marker per top-level
# folder, applied here so no file can forget it (`-m "not integration"` then really
# leaves out every broker test).
SUITES = {
    "unit": "unit",
    "integration": "integration",
    "e2e": "e2e",
    "chaos": "chaos",
    "chart": "chart",
    "k8s": "k8s",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        try:
            top = item.path.relative_to(tests_dir).parts[0]
        except ValueError:
            continue
        suite = SUITES.get(top)
        if suite is not None:
            item.add_marker(getattr(pytest.mark, suite))
