"""The README's flow as a new user runs it: `synod up` in one terminal, then
`synod submit "..." --wait` in another with SYNOD_BOOTSTRAP unset; the Python
client on the same cluster; and every message the run put on a topic is one
the AsyncAPI document names for that topic."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.localteam import assert_log_checks

from synod.client import AsyncClient, Client, find_cluster
from synod.dev.localkafka import free_port
from synod.transport.channels import CHANNELS
from synod.transport.logread import read_log

SYNOD = [sys.executable, "-m", "synod.cli.main"]


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout_s: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line
        assert proc.poll() is None, f"synod up exited with {proc.returncode}"
    raise AssertionError(f"no line starting with {prefix!r} within {timeout_s}s")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh place for `synod up`'s state, as a new user's checkout has."""
    monkeypatch.setenv("SYNOD_KAFKA_HOME", str(tmp_path / "kafka"))
    monkeypatch.delenv("SYNOD_BOOTSTRAP", raising=False)
    monkeypatch.delenv("SYNOD_TOPIC_PREFIX", raising=False)
    return tmp_path


def test_an_unreachable_broker_is_one_line_saying_what_to_set(home: Path) -> None:
    env = dict(os.environ, SYNOD_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    done = subprocess.run(
        [*SYNOD, "submit", "hello", "--wait"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot reach Kafka" in lines[0]
    assert "SYNOD_BOOTSTRAP" in lines[0]


async def test_up_then_submit_wait_finds_the_cluster(kafka: Any, home: Path) -> None:
    prefix = f"cf{uuid.uuid4().hex[:6]}."
    up_env = dict(os.environ, SYNOD_TOPIC_PREFIX=prefix, SYNOD_LLM_BACKEND="sim")
    up = subprocess.Popen(  # noqa: ASYNC220 - read with select, as test_synod_up does
        [
            *SYNOD,
            "up",
            "--bootstrap",
            kafka.bootstrap,
            "--gateway-port",
            str(free_port()),
            "--run-dir",
            str(home / "up"),  # where a client looks: next to SYNOD_KAFKA_HOME
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=up_env,
    )
    try:
        _wait_for_line(up, "ready ", 120)
        # The other terminal: neither SYNOD_BOOTSTRAP nor SYNOD_TOPIC_PREFIX set.
        proc = await asyncio.create_subprocess_exec(
            *SYNOD,
            "submit",
            "Write fizzbuzz(n) with tests",
            "--wait",
            "--json",
            "--timeout",
            "120",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
        stderr = err.decode()
        assert proc.returncode == 0, stderr
        assert "using the broker of the running `synod up`" in stderr
        assert kafka.bootstrap in stderr
        assert "Unclosed" not in stderr
        status = json.loads(out)
        assert status["state"] == "completed", status

        # The library the CLI is built on, found the same way.
        cluster = find_cluster(announce=False)
        assert (cluster.bootstrap, cluster.prefix, cluster.source) == (
            kafka.bootstrap,
            prefix,
            "synod up",
        )
        async with AsyncClient() as client:
            # A finished task's stream is its log, in order, through its outcome.
            types = [e.type async for e in client.events(status["task_id"])]
            assert types[0] == "TaskSubmitted"
            assert types.count("TaskCompleted") == 1  # usage records may follow it
            got = await client.status(status["task_id"])
            assert got is not None
            assert got.result == status["result"]

        def blocking_status() -> Any:
            with Client() as synod:
                return synod.status(status["task_id"])

        sync_status = await asyncio.to_thread(blocking_status)
        assert sync_status.state == "completed"

        # Every message on a topic is one the AsyncAPI document names for it.
        names = tuple(n for n, c in CHANNELS.items() if c.messages)
        log = await read_log(kafka.bootstrap, prefix, topics=names)
        assert log.records
        seen = {(r.topic, r.envelope.type) for r in log.records}
        undeclared = {(t, m) for t, m in seen if m not in CHANNELS[t].messages}
        assert not undeclared, f"on the wire but not in synod.transport.channels: {undeclared}"
        run = SimpleNamespace(bootstrap=kafka.bootstrap, prefix=prefix, credentials=None)
        await assert_log_checks(run)  # type: ignore[arg-type]
    finally:
        up.send_signal(signal.SIGTERM)
        up.communicate(timeout=60)
