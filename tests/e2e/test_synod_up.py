"""`synod up` as a user runs it: ready line, ps, a dead child restarted,
and nothing left running after SIGTERM."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.polling import wait_until

from synod.dev.localkafka import free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


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


def _state(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "processes.json").read_text())
    return data


def test_up_restarts_a_dead_child_and_stops_everything(kafka: Any, tmp_path: Path) -> None:
    env = dict(os.environ, SYNOD_TOPIC_PREFIX=f"up{uuid.uuid4().hex[:6]}.", SYNOD_LLM_BACKEND="sim")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synod.cli.main",
            "up",
            "--bootstrap",
            kafka.bootstrap,
            "--replicas",
            "coder=1",
            "--replicas",
            "reviewer=1",
            "--gateway-port",
            str(port),
            "--run-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    pids: list[int] = []
    try:
        line = _wait_for_line(proc, "ready ", 120)
        assert f"bootstrap={kafka.bootstrap}" in line
        assert f"gateway=http://127.0.0.1:{port}" in line
        state = _state(tmp_path)
        pids = [c["pid"] for c in state["children"]]
        assert {c["role"] for c in state["children"]} == {
            "consensus",
            "planner",
            "researcher",
            "coder",
            "reviewer",
            "gateway",
            "supervisor",
        }

        ps = subprocess.run(
            [sys.executable, "-m", "synod.cli.main", "ps", "--json", "--run-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert ps.returncode == 0, ps.stderr
        rows = json.loads(ps.stdout)["instances"]
        assert all(r["state"] == "running" for r in rows), rows

        [coder] = [c for c in state["children"] if c["role"] == "coder"]
        os.kill(coder["pid"], signal.SIGKILL)

        def restarted_pid() -> int:
            coder = next(c for c in _state(tmp_path)["children"] if c["role"] == "coder")
            return int(coder["pid"]) if coder["restarts"] == 1 and _alive(coder["pid"]) else 0

        pids.append(
            wait_until(
                restarted_pid, what="the killed coder to be restarted", timeout_s=30, interval_s=0.2
            )
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "coder-0 exited with status -9; restarting it" in stderr
    assert not [pid for pid in pids if _alive(pid)], "synod up left processes behind"
    assert not (tmp_path / "processes.json").exists()
