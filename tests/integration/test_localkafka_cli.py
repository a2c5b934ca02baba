"""`make kafka-up` / `kafka-down` / `kafka-clean`, through the module they call."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synod.dev import localkafka


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synod.dev.localkafka", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "SYNOD_KAFKA_PORT"},
    )


def test_up_twice_reuses_the_broker_and_down_leaves_no_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = _run("up", "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stderr
    last_line = first.stdout.strip().splitlines()[-1]
    assert last_line.startswith("SYNOD_BOOTSTRAP=127.0.0.1:")
    info = localkafka.read_info(run_dir)
    assert info is not None
    try:
        second = _run("up", "--run-dir", str(run_dir))
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip().splitlines()[-1] == last_line
        assert "reusing the running broker" in second.stderr
        assert localkafka.read_info(run_dir) == info

        status = _run("status", "--run-dir", str(run_dir))
        assert status.returncode == 0
        assert f"pid={info.pid}" in status.stdout
    finally:
        down = _run("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stderr
    assert not localkafka._pid_alive(info.pid)
    assert _run("status", "--run-dir", str(run_dir)).returncode == 1

    clean = _run("clean", "--run-dir", str(run_dir))
    assert clean.returncode == 0
    assert not run_dir.exists()


def test_unsupported_version_is_a_clear_error(tmp_path: Path) -> None:
    result = _run("up", "--run-dir", str(tmp_path), "--version", "2.8.0")
    assert result.returncode == 1
    assert "not supported" in result.stderr


def test_a_cluster_id_starting_with_a_dash_still_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One random id in 64 starts with '-', which the storage tool took for an option."""
    import base64

    dash_id = base64.urlsafe_b64encode(b"\xf8" + bytes(range(1, 16))).rstrip(b"=").decode()
    assert dash_id.startswith("-")
    monkeypatch.setattr(localkafka, "_new_cluster_id", lambda: dash_id)
    info = localkafka.start(tmp_path / "run")
    try:
        assert info.cluster_id == dash_id
    finally:
        localkafka.stop(tmp_path / "run")
