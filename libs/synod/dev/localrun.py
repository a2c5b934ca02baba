"""`synod up`: every service as a local child process, against a real Kafka.

Starts a local broker unless one is given, creates the topics, starts each
role's replicas as `python -m synod_services.<role>` with its own instance id,
waits until every instance has sent a heartbeat, then prints
`ready bootstrap=ADDR gateway=URL`. A child that dies is reported and started
again. On Ctrl-C or SIGTERM every child gets SIGTERM (they drain and commit),
then SIGKILL after a bound; the broker it started is stopped. Nothing it
started is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synod.dev import localkafka, securekafka
from synod.errors import ConfigError
from synod.runtimes import request_path
from synod.transport.admin import ensure_topics
from synod.transport.reader import PartitionReader, topic_partitions
from synod.transport.topics import HEARTBEATS, topic_name
from synod.wire import Codec

# The order children start in; each role's default replica count.
ROLES: dict[str, int] = {
    "consensus": 1,
    "planner": 1,
    "researcher": 1,
    "coder": 2,
    "reviewer": 3,
    "gateway": 1,
    "supervisor": 1,
}
STOP_BOUND_S = 15.0


def _say(msg: str) -> None:
    print(f"[synod up] {msg}", file=sys.stderr, flush=True)


def parse_replicas(specs: list[str]) -> dict[str, int]:
    replicas = dict(ROLES)
    for spec in specs:
        role, sep, count = spec.partition("=")
        if not sep or role not in ROLES or not count.isdigit():
            raise ConfigError(
                f"--replicas takes ROLE=N with ROLE one of {', '.join(ROLES)}; got {spec!r}"
            )
        replicas[role] = int(count)
    if replicas["reviewer"] < 1:
        raise ConfigError("at least one reviewer is needed: it is the electorate")
    if replicas["gateway"] > 1:
        raise ConfigError("locally one gateway serves the port; run more behind a load balancer")
    return replicas


@dataclass
class Child:
    role: str
    instance: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    started_at_wall: float = 0.0

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"synod_services.{self.role}"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, and we stop children in order
        )
        log.close()
        self.started_at = time.monotonic()
        self.started_at_wall = time.time()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class LocalRun:
    bootstrap: str | None = None
    backend: str | None = None
    fault_profile: str | None = None
    replicas: dict[str, int] = field(default_factory=lambda: dict(ROLES))
    prefix: str = ""
    run_dir: Path = field(default_factory=lambda: localkafka.default_home().parent / "up")
    gateway_port: int = 8080
    brokers: int = 1  # local Kafka nodes when no bootstrap is given (3: a KRaft cluster)
    children: list[Child] = field(default_factory=list)
    # False: a child that exits stays down until the supervisor asks for it
    # (a restart request file), as when testing that the supervisor notices.
    respawn_exited: bool = True
    # The broker secured (synod.dev.securekafka): services log in over SASL_SSL
    # as their role's user, under the rights table's ACLs, and sign what they
    # send; `bootstrap` stays the operator's PLAINTEXT door for this process.
    secure: bool = False
    credentials: dict[str, Any] | None = None
    # instance -> the bootstrap it uses instead of `bootstrap`: its zone's proxy
    # (synod.dev.netfaults), so a partition can cut that instance alone.
    bootstraps: dict[str, str] = field(default_factory=dict)
    _broker_dir: Path | None = None
    _cluster_dir: Path | None = None

    def _env(self, role: str, instance: str) -> dict[str, str]:
        env = dict(os.environ)
        assert self.bootstrap is not None
        env.update(
            SYNOD_BOOTSTRAP=self.bootstraps.get(instance, self.bootstrap),
            SYNOD_TOPIC_PREFIX=self.prefix,
            SYNOD_INSTANCE=instance,
            SYNOD_HEALTH_PORT="0",
            # Instance ids are stable here, so a respawned child takes its
            # partitions straight back (see KafkaSettings.static_membership).
            SYNOD_STATIC_MEMBERSHIP="1",
            SYNOD_GATEWAY_PORT=str(self.gateway_port),
            PYTHONUNBUFFERED="1",
        )
        if self.backend:
            env["SYNOD_LLM_BACKEND"] = self.backend
        if self.fault_profile:
            env["SYNOD_LLM_FAULT_PROFILE"] = self.fault_profile
        if self.credentials is not None:
            env.update(securekafka.env_for(self.credentials, role, instance))
        if role == "supervisor":
            env.setdefault("SYNOD_SUPERVISOR_RUNTIME", "local")
            env["SYNOD_SUPERVISOR_RUN_DIR"] = str(self.run_dir)
        return env

    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.bootstrap is None and self.brokers > 1:
            self._cluster_dir = self.run_dir / "kafka-cluster"
            cluster = await asyncio.to_thread(
                localkafka.start_cluster, self._cluster_dir, self.brokers
            )
            self.bootstrap = cluster.bootstrap
            _say(f"started {self.brokers} Apache Kafka {cluster.version} nodes at {self.bootstrap}")
        elif self.bootstrap is None and self.secure:
            await self._start_secured()
        elif self.bootstrap is None:
            self._broker_dir = self.run_dir / "kafka"
            info = await asyncio.to_thread(localkafka.start, self._broker_dir)
            self.bootstrap = info.bootstrap
            _say(f"started Apache Kafka {info.version} at {self.bootstrap}")
        elif self.secure:
            raise ConfigError("--secure starts its own broker: leave out --bootstrap")
        assert self.bootstrap is not None
        reports = await ensure_topics(self.bootstrap, prefix=self.prefix)
        created = sum(r.action == "created" for r in reports)
        _say(f"topics: {created} created, {len(reports) - created} already there")
        for role, count in self.replicas.items():
            for i in range(count):
                instance = f"{role}-{i}"
                child = Child(
                    role, instance, self._env(role, instance), self.run_dir / f"{instance}.log"
                )
                child.start()
                self.children.append(child)
        self._write_state()
        _say(f"started {len(self.children)} processes; logs in {self.run_dir}")

    async def _start_secured(self) -> None:
        if self.brokers > 1:
            raise ConfigError("--secure runs one broker; leave out --brokers")
        self._broker_dir = self.run_dir / "kafka"
        principals = [f"{r}-{i}" for r, n in self.replicas.items() for i in range(n)]
        prepared = await asyncio.to_thread(securekafka.prepare, self._broker_dir, principals)
        info = await asyncio.to_thread(localkafka.start, self._broker_dir, secure=prepared.secured)
        if not info.secured or info.tls_bootstrap is None:
            raise ConfigError(
                f"a broker without security already runs in {self._broker_dir}: "
                "stop it (`synod down`) or use another run dir"
            )
        self.bootstrap = info.bootstrap
        granted = await securekafka.grant(info.bootstrap, prepared.users, self.prefix)
        path = securekafka.write_credentials(self.run_dir, prepared, info.tls_bootstrap)
        self.credentials = json.loads(path.read_text())
        cli_env = securekafka.write_cli_env(self.run_dir, self.credentials, self.prefix)
        _say(
            f"started Apache Kafka {info.version}, secured: SASL_SSL at {info.tls_bootstrap}, "
            f"{len(prepared.users)} users, {granted} ACLs; credentials in {path}; "
            f"for the synod CLI: set -a; . {cli_env}; set +a"
        )

    def _write_state(self) -> None:
        state = {
            "bootstrap": self.bootstrap,
            # The SASL_SSL listener, for clients that log in (cli.env).
            "secure_bootstrap": self.credentials["bootstrap"] if self.credentials else None,
            "prefix": self.prefix,
            "pid": os.getpid(),
            # The broker this run started, for `synod chaos broker-restart` (None: given one).
            "broker_dir": str(self._broker_dir) if self._broker_dir else None,
            "children": [
                {
                    "role": c.role,
                    "instance": c.instance,
                    "pid": c.proc.pid if c.proc else None,
                    # Its zone's proxy, if any: what `synod chaos partition` may cut.
                    "bootstrap": self.bootstraps.get(c.instance, self.bootstrap),
                    "restarts": c.restarts,
                    "started_at": c.started_at_wall,
                    "log": str(c.log_path),
                }
                for c in self.children
            ],
        }
        (self.run_dir / "processes.json").write_text(json.dumps(state, indent=2))

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until every instance has sent a heartbeat."""
        assert self.bootstrap is not None
        wanted = {c.instance for c in self.children}
        seen: set[str] = set()
        codec = Codec()
        topic = topic_name(HEARTBEATS, self.prefix)
        async with PartitionReader(self.bootstrap, client_id="synod-up") as reader:
            await reader.assign(await topic_partitions(self.bootstrap, [topic]), "end")
            deadline = time.monotonic() + timeout_s
            while seen < wanted:
                if time.monotonic() > deadline:
                    missing = ", ".join(sorted(wanted - seen))
                    raise TimeoutError(f"no heartbeat within {timeout_s:.0f}s from: {missing}")
                dead = [c for c in self.children if not c.alive]
                if dead:
                    raise RuntimeError(
                        f"{dead[0].instance} exited during start-up "
                        f"(status {dead[0].proc.returncode if dead[0].proc else '?'}); "
                        f"see {dead[0].log_path}"
                    )
                for r in await reader.poll(0.5):
                    with contextlib.suppress(Exception):
                        seen.add(codec.decode(r.value).body.instance)

    async def watch(self, stop: asyncio.Event) -> None:
        """Restart children that die, until asked to stop."""
        while not stop.is_set():
            self._restart_requested()
            for child in self.children:
                if not child.alive and not stop.is_set() and self.respawn_exited:
                    code = child.proc.returncode if child.proc else None
                    _say(f"{child.instance} exited with status {code}; restarting it")
                    child.restarts += 1
                    child.start()
                    self._write_state()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    def _restart_requested(self) -> None:
        """Answer the supervisor's restart requests (synod.runtimes)."""
        for child in self.children:
            request = request_path(self.run_dir, child.instance)
            try:
                asked_at = request.stat().st_mtime
            except FileNotFoundError:
                continue
            request.unlink(missing_ok=True)
            if child.alive and child.started_at_wall > asked_at:
                continue  # already started again since the request
            if child.alive and child.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
            _say(f"{child.instance}: restart asked by the supervisor")
            child.restarts += 1
            child.start()
            self._write_state()

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.alive and child.proc is not None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_BOUND_S
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _say(f"{child.instance} did not stop in {STOP_BOUND_S:.0f}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
        if self._broker_dir is not None:
            localkafka.stop(self._broker_dir)
            _say("stopped the broker")
        if self._cluster_dir is not None:
            localkafka.stop_cluster(self._cluster_dir)
            _say("stopped the cluster")
        (self.run_dir / "processes.json").unlink(missing_ok=True)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}" if self.replicas.get("gateway") else "-"


async def up(run: LocalRun) -> int:
    """Run everything until SIGTERM/SIGINT; 0 on a clean stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run.start()
        await run.wait_ready()
        print(f"ready bootstrap={run.bootstrap} gateway={run.gateway_url}", flush=True)
        await run.watch(stop)
        return 0
    except (TimeoutError, RuntimeError, ConfigError) as exc:
        _say(f"failed: {exc}")
        return 1
    finally:
        run.stop()


def read_state(run_dir: Path | None = None) -> dict[str, Any] | None:
    path = (run_dir or localkafka.default_home().parent / "up") / "processes.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
