"""A real single-node Apache Kafka broker (KRaft) for development, demos and tests.

The broker is the official one: its jars come from Maven Central through Maven
(`mvn dependency:copy-dependencies` on a fetch-only pom) into a git-ignored cache,
and it runs as a plain `java` process with one combined broker+controller on
127.0.0.1. There is no Docker here, and mocks would not tell us how groups,
offsets and transactions really behave.

Used by `make kafka-up` / `kafka-down` / `kafka-clean` (through
`python -m synod.dev.localkafka`), by the pytest session fixture, and by `synod up`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from synod.errors import BrokerError

DEFAULT_VERSION = "3.9.1"
SUPPORTED_SERIES = ("3.9", "4.1")

# Extra artifacts per release line. Kafka 3.9 declares slf4j-api but no binding:
# without one the broker logs nothing at all, which hides every start-up failure.
# Kafka 4.x moved to log4j2.
_LOGGING_ARTIFACTS = {
    "3": [
        ("ch.qos.reload4j", "reload4j", "1.2.25"),
        ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    ],
    "4": [
        ("org.apache.logging.log4j", "log4j-slf4j2-impl", "2.24.3"),
        ("org.apache.logging.log4j", "log4j-core", "2.24.3"),
    ],
}

# Sized for a 2-core, 24 GiB machine that also runs every Synod service and the
# tests: a broker with a handful of topics is comfortable in 1 GiB.
_JVM_OPTS = [
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]


def project_root() -> Path:
    """The checkout this library lives in (libs/synod/dev/ -> repo root)."""
    return Path(__file__).resolve().parents[3]


def default_home() -> Path:
    env = os.environ.get("SYNOD_KAFKA_HOME")
    return Path(env) if env else project_root() / ".cache" / "kafka"


@dataclass(frozen=True)
class BrokerInfo:
    """What a running broker is: written to `<run dir>/broker.json`."""

    pid: int
    port: int
    controller_port: int
    version: str
    cluster_id: str
    run_dir: str
    started_in_s: float
    # A second listener that requires SASL/SCRAM (start(..., scram=...)), for
    # testing authentication; the PLAINTEXT one stays for the broker itself.
    sasl_port: int | None = None
    scram_mechanism: str | None = None
    # Secured (start(..., secure=...)): a SASL_SSL listener, and the authorizer on
    # with deny by default (synod.dev.securekafka); the PLAINTEXT listener is then
    # the operator's door (a super user), never a service's.
    tls_port: int | None = None
    secured: bool = False
    # Network zones (start(..., zones=N)): zone name -> [listener port, advertised
    # port]. A client bootstrapped at the advertised port is told that port for
    # every later connection, so a proxy listening there (synod.dev.netfaults)
    # carries every TCP path of the zone's clients, and cutting it cuts them all.
    zones: dict[str, list[int]] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.sasl_port}" if self.sasl_port else None

    @property
    def tls_bootstrap(self) -> str | None:
        return f"localhost:{self.tls_port}" if self.tls_port else None


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM credential created when the storage is formatted."""

    username: str
    password: str
    mechanism: str = "SCRAM-SHA-512"


@dataclass(frozen=True)
class Secured:
    """What a secured broker needs (synod.dev.securekafka makes it): the users,
    and the PEM file with the TLS listener's key and certificate chain."""

    users: tuple[ScramUser, ...]
    keystore_pem: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log(msg: str) -> None:
    print(f"[kafka] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- jars


def _fetch_pom(version: str) -> str:
    major = version.split(".", 1)[0]
    deps = [("org.apache.kafka", "kafka_2.13", version), *_LOGGING_ARTIFACTS[major]]
    dep_xml = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.synod</groupId>
  <artifactId>kafka-broker-fetch</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dep_xml}
  </dependencies>
</project>
"""


def ensure_jars(version: str = DEFAULT_VERSION, home: Path | None = None) -> Path:
    """Fetch the broker's runtime classpath once; return the folder of jars."""
    if not version.startswith(SUPPORTED_SERIES):
        raise BrokerError(f"Kafka {version} is not supported; use a {SUPPORTED_SERIES} release")
    base = (home or default_home()) / "dist" / version
    libs = base / "libs"
    stamp = base / ".complete"
    if stamp.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not on PATH; install it (apt-get install maven)")
    base.mkdir(parents=True, exist_ok=True)
    (base / "pom.xml").write_text(_fetch_pom(version))
    if libs.exists():
        shutil.rmtree(libs)
    _log(f"fetching Apache Kafka {version} jars from Maven Central into {libs}")
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(base / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BrokerError(
            f"mvn could not fetch Kafka {version} (exit {proc.returncode}): "
            f"{(proc.stdout + proc.stderr).strip()[-2000:]}"
        )
    if not any(libs.glob(f"kafka_2.13-{version}.jar")):
        raise BrokerError(f"mvn finished but kafka_2.13-{version}.jar is not in {libs}")
    stamp.write_text(version)
    return libs


def installed_version(libs: Path) -> str:
    """The broker version, read from the kafka_2.13 jar actually on the classpath."""
    for jar in libs.glob("kafka_2.13-*.jar"):
        m = re.match(r"kafka_2\.13-(.+)\.jar$", jar.name)
        if m:
            return m.group(1)
    raise BrokerError(f"no kafka_2.13 jar in {libs}")


# ---------------------------------------------------------------- config


def _server_properties(
    data_dir: Path,
    port: int,
    controller_port: int,
    sasl_port: int | None = None,
    scram_mechanism: str = "SCRAM-SHA-512",
    *,
    node_id: int = 1,
    voters: str | None = None,
    replication: int = 1,
    tls_port: int | None = None,
    keystore_pem: Path | None = None,
    zones: dict[str, list[int]] | None = None,
) -> str:
    """One node's configuration. A cluster passes every node's `voters` and its
    `replication` (3 for three nodes: internal topics replicated, min ISR 2)."""
    min_isr = str(min(2, replication))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        # One node: internal topics must not ask for replicas that cannot exist,
        # or transactions and group commits fail. Three nodes: every partition on
        # all three, and a write acknowledged (acks=all) only once two have it,
        # so one broker can die without losing an acknowledged record.
        "offsets.topic.replication.factor": str(replication),
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "10",
        "default.replication.factor": str(replication),
        "min.insync.replicas": min_isr,
        "num.partitions": "3",
        # Topics come from the catalogue (`synod topics create`), as on a
        # production cluster where auto-creation is usually off.
        "auto.create.topics.enable": "false",
        # The 3 s default delays every first group join; tests join many groups.
        "group.initial.rebalance.delay.ms": "0",
        # Allow short consumer sessions so a killed agent is noticed in about a
        # second instead of the 45 s client default (see docs/adr).
        "group.min.session.timeout.ms": "1000",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.check.interval.ms": "30000",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }
    if replication > 1:
        # A killed broker is fenced (its partitions led elsewhere, it leaves the
        # ISR) after the session timeout; 9 s by default stalls acks=all writes
        # that long. Locally a broker that misses 3 s of heartbeats is gone.
        props["broker.session.timeout.ms"] = "3000"
        props["broker.heartbeat.interval.ms"] = "500"
        props["replica.lag.time.max.ms"] = "10000"
    if sasl_port is not None:
        props["listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        props["advertised.listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        props["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        props["sasl.enabled.mechanisms"] = scram_mechanism
        jaas = f"listener.name.sasl_plaintext.{scram_mechanism.lower()}.sasl.jaas.config"
        props[jaas] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    if tls_port is not None and keystore_pem is not None:
        # "localhost": the name in the broker's certificate, checked by clients.
        props["listeners"] += f",SASL_SSL://127.0.0.1:{tls_port}"
        props["advertised.listeners"] += f",SASL_SSL://localhost:{tls_port}"
        props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
        props["sasl.enabled.mechanisms"] = scram_mechanism
        jaas = f"listener.name.sasl_ssl.{scram_mechanism.lower()}.sasl.jaas.config"
        props[jaas] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        props["listener.name.sasl_ssl.ssl.keystore.type"] = "PEM"
        props["listener.name.sasl_ssl.ssl.keystore.location"] = str(keystore_pem)
        # Deny by default: a principal does what an ACL allows and nothing else.
        # ANONYMOUS is the PLAINTEXT and controller listeners' principal: the
        # broker itself and the operator (topic creation, ACLs), on 127.0.0.1.
        props["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        props["allow.everyone.if.no.acl.found"] = "false"
        props["super.users"] = "User:ANONYMOUS"
    for zone, (listen_port, advertised_port) in (zones or {}).items():
        name = zone_listener(zone)
        props["listeners"] += f",{name}://127.0.0.1:{listen_port}"
        props["advertised.listeners"] += f",{name}://127.0.0.1:{advertised_port}"
        props["listener.security.protocol.map"] += f",{name}:PLAINTEXT"
    return "".join(f"{k}={v}\n" for k, v in props.items())


_LOG4J1 = """log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=INFO
"""

_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
"""


def zone_listener(zone: str) -> str:
    """The broker's listener name for a zone (Kafka wants [A-Z0-9_])."""
    if not re.fullmatch(r"[a-z0-9]+", zone):
        raise BrokerError(f"a zone name is lower-case letters and digits, got {zone!r}")
    return f"ZONE_{zone.upper()}"


def zone_names(count: int) -> list[str]:
    return [f"z{i}" for i in range(1, count + 1)]


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH; install a JDK 17+ (apt-get install openjdk-17-jdk)")
    return java


def _java_cmd(
    libs: Path, version: str, run_dir: Path, main: str, *args: str, heap: list[str] | None = None
) -> list[str]:
    log_file = run_dir / "server.log"
    if version.startswith("3."):
        log_cfg = run_dir / "log4j.properties"
        log_cfg.write_text(_LOG4J1.format(log=log_file))
        log_opt = f"-Dlog4j.configuration=file:{log_cfg}"
    else:
        log_cfg = run_dir / "log4j2.properties"
        log_cfg.write_text(_LOG4J2.format(log=log_file))
        log_opt = f"-Dlog4j2.configurationFile={log_cfg}"
    return [
        _java(),
        *_JVM_OPTS,
        *(heap or []),  # after the defaults: the JVM takes the last -Xms/-Xmx
        log_opt,
        f"-Dkafka.logs.dir={run_dir}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def _new_cluster_id() -> str:
    # Kafka's Uuid text form: url-safe base64 of 16 bytes, no padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


# ---------------------------------------------------------------- lifecycle


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


async def _metadata_round_trip(bootstrap: str, timeout_s: float) -> bool:
    from aiokafka.client import AIOKafkaClient

    # Refused connections are expected while the broker boots; they are not news.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=timeout_s)
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()


def wait_ready(bootstrap: str, timeout_s: float = 60.0, pid: int | None = None) -> None:
    """Block until the broker answers a metadata request (an open port is not enough)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid is not None and not _pid_alive(pid):
            raise BrokerError("the broker process exited during start-up")
        if asyncio.run(_metadata_round_trip(bootstrap, timeout_s=3.0)):
            return
        time.sleep(0.2)
    raise BrokerError(f"the broker at {bootstrap} did not answer metadata within {timeout_s:.0f}s")


def read_info(run_dir: Path) -> BrokerInfo | None:
    path = run_dir / "broker.json"
    if not path.exists():
        return None
    try:
        return BrokerInfo(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def running(run_dir: Path) -> BrokerInfo | None:
    """The broker recorded in run_dir, if its process is alive."""
    info = read_info(run_dir)
    if info is not None and _pid_alive(info.pid):
        return info
    return None


def start(
    run_dir: Path,
    version: str = DEFAULT_VERSION,
    port: int | None = None,
    home: Path | None = None,
    timeout_s: float = 90.0,
    scram: ScramUser | None = None,
    secure: Secured | None = None,
    zones: int = 0,
) -> BrokerInfo:
    """Start a broker whose state lives in run_dir, or return the one already running there.

    `zones`: that many extra listeners (z1, z2, ...), each advertised at a port of its
    own where synod.dev.netfaults puts a proxy (BrokerInfo.zones)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    existing = running(run_dir)
    if existing is not None:
        wait_ready(existing.bootstrap, timeout_s=timeout_s, pid=existing.pid)
        _log(f"reusing the running broker (pid {existing.pid}) at {existing.bootstrap}")
        return existing

    libs = ensure_jars(version, home)
    version = installed_version(libs)
    # A free port can be taken by someone else between our probe and the
    # broker's bind; then the broker exits at once and we try fresh ports.
    attempts = 1 if port else 3
    for attempt in range(1, attempts + 1):
        try:
            return _start_once(
                run_dir, libs, version, port or free_port(), timeout_s, scram, secure, zones
            )
        except BrokerError as exc:
            if attempt == attempts or "exited during start-up" not in str(exc):
                raise
            _log(f"the broker exited during start-up (attempt {attempt}); retrying")
    raise AssertionError("unreachable")


def _start_once(
    run_dir: Path,
    libs: Path,
    version: str,
    port: int,
    timeout_s: float,
    scram: ScramUser | None = None,
    secure: Secured | None = None,
    zones: int = 0,
) -> BrokerInfo:
    data_dir = run_dir / "data"
    taken = {port}
    controller_port = free_port()
    while controller_port in taken:
        controller_port = free_port()
    taken.add(controller_port)
    sasl_port = None
    if scram is not None:
        sasl_port = free_port()
        while sasl_port in taken:
            sasl_port = free_port()
        taken.add(sasl_port)
    tls_port = None
    users = [scram] if scram else []
    if secure is not None:
        users += secure.users
        tls_port = free_port()
        while tls_port in taken:
            tls_port = free_port()
        taken.add(tls_port)
    zone_ports: dict[str, list[int]] = {}
    for zone in zone_names(zones):
        pair: list[int] = []
        while len(pair) < 2:
            candidate = free_port()
            if candidate not in taken:
                taken.add(candidate)
                pair.append(candidate)
        zone_ports[zone] = pair
    props = run_dir / "server.properties"
    mechanism = users[0].mechanism if users else "SCRAM-SHA-512"
    props.write_text(
        _server_properties(
            data_dir,
            port,
            controller_port,
            sasl_port,
            mechanism,
            tls_port=tls_port,
            keystore_pem=secure.keystore_pem if secure else None,
            zones=zone_ports or None,
        )
    )

    # The data dir records its cluster id; keep it so a restart keeps the data.
    meta = data_dir / "meta.properties"
    if meta.exists():
        match = re.search(r"^cluster\.id=(.+)$", meta.read_text(), re.MULTILINE)
        cluster_id = match.group(1).strip() if match else _new_cluster_id()
    else:
        cluster_id = _new_cluster_id()
        fmt = _java_cmd(
            libs,
            version,
            run_dir,
            "kafka.tools.StorageTool",
            "format",
            # `=`: a random id may start with "-" and would be read as an option.
            f"--cluster-id={cluster_id}",
            f"--config={props}",
            # SCRAM credentials of a KRaft cluster are records in its metadata
            # log: the format step writes them before the broker first starts.
            *(
                f"--add-scram={u.mechanism}=[name={u.username},password={u.password}]"
                for u in users
            ),
        )
        proc = subprocess.run(fmt, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed: {proc.stdout}{proc.stderr}")

    started = time.monotonic()
    console = open(run_dir / "console.log", "ab")  # noqa: SIM115 - handed to the child
    cmd = _java_cmd(libs, version, run_dir, "kafka.Kafka", str(props))
    child = subprocess.Popen(
        cmd,
        stdout=console,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: make kafka-down kills all of it
    )
    console.close()
    info = BrokerInfo(
        pid=child.pid,
        port=port,
        controller_port=controller_port,
        version=version,
        cluster_id=cluster_id,
        run_dir=str(run_dir),
        started_in_s=0.0,
        sasl_port=sasl_port,
        scram_mechanism=scram.mechanism if scram else None,
        tls_port=tls_port,
        secured=secure is not None,
        zones=zone_ports or None,
    )
    try:
        wait_ready(info.bootstrap, timeout_s=timeout_s, pid=child.pid)
    except BrokerError as exc:
        stop(run_dir, info=info)
        tail = _tail(run_dir / "server.log") or _tail(run_dir / "console.log")
        raise BrokerError(f"{exc}; last broker log lines:\n{tail}") from exc
    info = BrokerInfo(**{**asdict(info), "started_in_s": round(time.monotonic() - started, 2)})
    (run_dir / "broker.json").write_text(json.dumps(asdict(info), indent=2))
    return info


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop(run_dir: Path, info: BrokerInfo | None = None, timeout_s: float = 30.0) -> bool:
    """Stop the broker of run_dir (SIGTERM, then SIGKILL); True if one was running."""
    info = info or read_info(run_dir)
    if info is None or not _pid_alive(info.pid):
        (run_dir / "broker.json").unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _pid_alive(info.pid):
        _reap(info.pid)
        time.sleep(0.1)
    if _pid_alive(info.pid):
        _log(f"broker pid {info.pid} ignored SIGTERM for {timeout_s:.0f}s; sending SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(info.pid, signal.SIGKILL)
        while _pid_alive(info.pid):
            _reap(info.pid)
            time.sleep(0.05)
    _reap(info.pid)
    (run_dir / "broker.json").unlink(missing_ok=True)
    return True


def restart(run_dir: Path, down_s: float = 0.0, timeout_s: float = 90.0) -> BrokerInfo:
    """Stop the broker of run_dir, wait down_s, start it again on its ports and data."""
    info = read_info(run_dir)
    if info is None or not _pid_alive(info.pid):
        raise BrokerError(f"no broker runs in {run_dir}: start one (synod up) before restarting it")
    stop(run_dir, info=info)
    time.sleep(down_s)
    libs = ensure_jars(info.version)
    console = open(run_dir / "console.log", "ab")  # noqa: SIM115 - handed to the child
    cmd = _java_cmd(libs, info.version, run_dir, "kafka.Kafka", str(run_dir / "server.properties"))
    child = subprocess.Popen(
        cmd,
        stdout=console,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    console.close()
    started = time.monotonic()
    info = BrokerInfo(**{**asdict(info), "pid": child.pid})
    wait_ready(info.bootstrap, timeout_s=timeout_s, pid=child.pid)
    info = BrokerInfo(**{**asdict(info), "started_in_s": round(time.monotonic() - started, 2)})
    (run_dir / "broker.json").write_text(json.dumps(asdict(info), indent=2))
    return info


def _reap(pid: int) -> None:
    # When the broker is our own child (tests, `synod up`), collect its exit
    # status so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------- clusters

# Three nodes share a 2-core machine with every Synod service: each JVM gets a
# small heap (a local cluster holds a few hundred partitions at most).
_CLUSTER_HEAP = ["-Xms128m", "-Xmx512m"]


@dataclass(frozen=True)
class NodeInfo:
    node_id: int
    pid: int
    port: int
    controller_port: int
    run_dir: str

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class ClusterInfo:
    """A local multi-node KRaft cluster: written to `<run dir>/cluster.json`."""

    nodes: tuple[NodeInfo, ...]
    version: str
    cluster_id: str
    run_dir: str
    started_in_s: float

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def pids(self) -> list[int]:
        return [n.pid for n in self.nodes]

    def node(self, node_id: int) -> NodeInfo:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise BrokerError(f"no node {node_id} in the cluster at {self.run_dir}")


def _write_cluster(info: ClusterInfo) -> None:
    doc = asdict(info)
    (Path(info.run_dir) / "cluster.json").write_text(json.dumps(doc, indent=2))


def read_cluster(run_dir: Path) -> ClusterInfo | None:
    path = run_dir / "cluster.json"
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        nodes = tuple(NodeInfo(**n) for n in doc.pop("nodes"))
        return ClusterInfo(nodes=nodes, **doc)
    except (ValueError, TypeError, KeyError):
        return None


def running_cluster(run_dir: Path) -> ClusterInfo | None:
    """The cluster recorded in run_dir, if every node's process is alive."""
    info = read_cluster(run_dir)
    if info is not None and all(_pid_alive(pid) for pid in info.pids):
        return info
    return None


def _spawn_node(
    libs: Path, version: str, node_dir: Path, *, fmt_cluster_id: str | None = None
) -> int:
    """Start one node from its server.properties (formatting its storage first if asked)."""
    props = node_dir / "server.properties"
    if fmt_cluster_id is not None:
        fmt = _java_cmd(
            libs,
            version,
            node_dir,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={fmt_cluster_id}",
            f"--config={props}",
        )
        proc = subprocess.run(fmt, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed: {proc.stdout}{proc.stderr}")
    console = open(node_dir / "console.log", "ab")  # noqa: SIM115 - handed to the child
    cmd = _java_cmd(libs, version, node_dir, "kafka.Kafka", str(props), heap=_CLUSTER_HEAP)
    child = subprocess.Popen(
        cmd,
        stdout=console,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    console.close()
    return child.pid


async def _cluster_brokers(bootstrap: str) -> int:
    from aiokafka.client import AIOKafkaClient

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=3.0)
        return len(client.cluster.brokers())
    except Exception:
        return 0
    finally:
        await client.close()


def wait_cluster_ready(info: ClusterInfo, timeout_s: float = 90.0) -> None:
    """Until the metadata names every node (the quorum formed, every broker registered)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dead = [n.node_id for n in info.nodes if not _pid_alive(n.pid)]
        if dead:
            raise BrokerError(f"node(s) {dead} exited during start-up")
        if asyncio.run(_cluster_brokers(info.bootstrap)) >= len(info.nodes):
            return
        time.sleep(0.3)
    raise BrokerError(
        f"the cluster at {info.bootstrap} did not register {len(info.nodes)} brokers "
        f"within {timeout_s:.0f}s"
    )


def start_cluster(
    run_dir: Path,
    brokers: int = 3,
    version: str = DEFAULT_VERSION,
    home: Path | None = None,
    timeout_s: float = 120.0,
) -> ClusterInfo:
    """Start `brokers` combined broker+controller nodes (a controller quorum of all of
    them) whose state lives in run_dir, or return the cluster already running there."""
    if brokers < 2:
        raise BrokerError("a cluster has at least 2 nodes; use start() for one broker")
    run_dir.mkdir(parents=True, exist_ok=True)
    existing = running_cluster(run_dir)
    if existing is not None:
        wait_cluster_ready(existing, timeout_s)
        _log(f"reusing the running {len(existing.nodes)}-node cluster at {existing.bootstrap}")
        return existing
    stop_cluster(run_dir)  # a partly dead cluster: stop what is left, keep the data
    libs = ensure_jars(version, home)
    version = installed_version(libs)
    previous = read_cluster(run_dir)
    taken: set[int] = set()

    def port() -> int:
        p = free_port()
        while p in taken:
            p = free_port()
        taken.add(p)
        return p

    ids = list(range(1, brokers + 1))
    ports = {i: port() for i in ids}
    controllers = {i: port() for i in ids}
    voters = ",".join(f"{i}@127.0.0.1:{controllers[i]}" for i in ids)
    replication = min(3, brokers)
    cluster_id = previous.cluster_id if previous is not None else _new_cluster_id()
    started = time.monotonic()
    nodes = []
    for i in ids:
        node_dir = run_dir / f"node-{i}"
        node_dir.mkdir(parents=True, exist_ok=True)
        data_dir = node_dir / "data"
        (node_dir / "server.properties").write_text(
            _server_properties(
                data_dir,
                ports[i],
                controllers[i],
                node_id=i,
                voters=voters,
                replication=replication,
            )
        )
        formatted = (data_dir / "meta.properties").exists()
        pid = _spawn_node(libs, version, node_dir, fmt_cluster_id=None if formatted else cluster_id)
        nodes.append(NodeInfo(i, pid, ports[i], controllers[i], str(node_dir)))
    info = ClusterInfo(tuple(nodes), version, cluster_id, str(run_dir), 0.0)
    _write_cluster(info)
    try:
        wait_cluster_ready(info, timeout_s)
    except BrokerError as exc:
        stop_cluster(run_dir)
        tails = "\n".join(
            f"node {n.node_id}: {_tail(Path(n.run_dir) / 'server.log', 8)}" for n in nodes
        )
        raise BrokerError(f"{exc}; last log lines:\n{tails}") from exc
    info = ClusterInfo(
        info.nodes, version, cluster_id, str(run_dir), round(time.monotonic() - started, 2)
    )
    _write_cluster(info)
    return info


def _stop_pid(pid: int, sig: signal.Signals, timeout_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _pid_alive(pid):
            _reap(pid)
            time.sleep(0.05)
    _reap(pid)


def stop_cluster(run_dir: Path, timeout_s: float = 30.0) -> bool:
    """Stop every node of run_dir's cluster (SIGTERM, then SIGKILL); True if one ran."""
    info = read_cluster(run_dir)
    if info is None:
        return False
    alive = [n for n in info.nodes if _pid_alive(n.pid)]
    for n in alive:  # all at once: a node alone waits for a quorum that is shutting down
        with contextlib.suppress(ProcessLookupError):
            os.killpg(n.pid, signal.SIGTERM)
    for n in alive:
        _stop_pid(n.pid, signal.SIGTERM, timeout_s)
    return bool(alive)


def kill_node(run_dir: Path, node_id: int) -> None:
    """SIGKILL one node (its process group), as a crashed machine: no clean shutdown."""
    info = read_cluster(run_dir)
    if info is None:
        raise BrokerError(f"no cluster in {run_dir}")
    _stop_pid(info.node(node_id).pid, signal.SIGKILL, 10.0)


def stop_node(run_dir: Path, node_id: int, timeout_s: float = 60.0) -> None:
    """Stop one node cleanly (SIGTERM: it hands its leaderships over first), as in a
    rolling restart; SIGKILL only if it ignores that for timeout_s."""
    info = read_cluster(run_dir)
    if info is None:
        raise BrokerError(f"no cluster in {run_dir}")
    _stop_pid(info.node(node_id).pid, signal.SIGTERM, timeout_s)


def restart_node(run_dir: Path, node_id: int, timeout_s: float = 90.0) -> ClusterInfo:
    """Start a stopped node again on its old ports and data; it rejoins and catches up."""
    info = read_cluster(run_dir)
    if info is None:
        raise BrokerError(f"no cluster in {run_dir}")
    old = info.node(node_id)
    if _pid_alive(old.pid):
        raise BrokerError(f"node {node_id} is still running (pid {old.pid})")
    libs = ensure_jars(info.version)
    pid = _spawn_node(libs, info.version, Path(old.run_dir))
    nodes = tuple(
        NodeInfo(n.node_id, pid, n.port, n.controller_port, n.run_dir)
        if n.node_id == node_id
        else n
        for n in info.nodes
    )
    info = ClusterInfo(nodes, info.version, info.cluster_id, info.run_dir, info.started_in_s)
    _write_cluster(info)
    wait_cluster_ready(info, timeout_s)
    return info


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m synod.dev.localkafka",
        description="Run a real single-node Kafka broker (KRaft) on 127.0.0.1.",
    )
    parser.add_argument("command", choices=["up", "down", "clean", "status", "fetch"])
    parser.add_argument("--version", default=os.environ.get("SYNOD_KAFKA_VERSION", DEFAULT_VERSION))
    parser.add_argument("--run-dir", type=Path, default=None, help="broker state (default: cache)")
    parser.add_argument(
        "--brokers", type=int, default=int(os.environ.get("BROKERS") or 1), help="1, or 3 (KRaft)"
    )
    args = parser.parse_args(argv)
    if args.brokers < 1:
        parser.error("--brokers must be at least 1")
    run_dir = args.run_dir or default_home() / "run"
    cluster_dir = args.run_dir or default_home() / "cluster"
    try:
        if args.brokers > 1:
            return _cluster_command(args.command, cluster_dir, args.brokers, args.version)
        if args.command in ("down", "clean") and read_cluster(cluster_dir) is not None:
            _cluster_command(args.command, cluster_dir, 3, args.version)  # and the broker too
        if args.command == "fetch":
            libs = ensure_jars(args.version)
            print(f"kafka {installed_version(libs)} jars in {libs}")
        elif args.command == "up":
            port_env = os.environ.get("SYNOD_KAFKA_PORT")
            port = int(port_env) if port_env else None
            info = start(run_dir, version=args.version, port=port)
            rss = rss_bytes(info.pid) / 2**20
            _log(
                f"Apache Kafka {info.version} (KRaft, pid {info.pid}) ready; "
                f"start-up {info.started_in_s}s, RSS {rss:.0f} MiB, log {run_dir}/server.log"
            )
            print(f"SYNOD_BOOTSTRAP={info.bootstrap}")
        elif args.command == "down":
            recorded = read_info(run_dir)
            if stop(run_dir):
                _log(f"stopped the broker (pid {recorded.pid if recorded else '?'})")
            else:
                _log("no broker was running")
        elif args.command == "clean":
            stop(run_dir)
            if run_dir.exists():
                shutil.rmtree(run_dir)
            _log(f"removed {run_dir}")
        elif args.command == "status":
            live = running(run_dir)
            if live is None:
                print("not running")
                return 1
            print(f"running pid={live.pid} version={live.version} SYNOD_BOOTSTRAP={live.bootstrap}")
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cluster_command(command: str, run_dir: Path, brokers: int, version: str) -> int:
    if command == "fetch":
        libs = ensure_jars(version)
        print(f"kafka {installed_version(libs)} jars in {libs}")
    elif command == "up":
        info = start_cluster(run_dir, brokers=brokers, version=version)
        rss = sum(rss_bytes(pid) for pid in info.pids) / 2**20
        _log(
            f"Apache Kafka {info.version}: {len(info.nodes)} KRaft nodes "
            f"(pids {' '.join(map(str, info.pids))}) ready; start-up {info.started_in_s}s, "
            f"RSS {rss:.0f} MiB in all, logs {run_dir}/node-*/server.log"
        )
        print(f"SYNOD_BOOTSTRAP={info.bootstrap}")
    elif command in ("down", "clean"):
        if stop_cluster(run_dir):
            _log("stopped the cluster")
        else:
            _log("no cluster was running")
        if command == "clean" and run_dir.exists():
            shutil.rmtree(run_dir)
            _log(f"removed {run_dir}")
    elif command == "status":
        live = running_cluster(run_dir)
        if live is None:
            print("not running")
            return 1
        print(
            f"running nodes={len(live.nodes)} version={live.version} "
            f"SYNOD_BOOTSTRAP={live.bootstrap}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
