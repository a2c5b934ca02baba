"""Hostile project tests in the bubblewrap sandbox: each attack must fail inside, and the
juror must see a failed run (a verdict), not a crash.

Each project test asserts that its attack worked, so a sandbox that holds shows as
that test failing; the host then checks that nothing got out."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from synod import sandbox
from synod.errors import ConfigError
from synod.roles.reviewer.answer_tests import run_of
from synod.sandbox import verify

pytestmark = pytest.mark.skipif(
    sandbox.bwrap_problem() is not None, reason=f"no bubblewrap here: {sandbox.bwrap_problem()}"
)

CANARY = "sk-ant-api03-SANDBOX-CANARY"


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A host socket the project must not reach."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            got.append(conn.recv(100))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], got
    stop.set()
    thread.join(2)
    server.close()


def hostile(port: int, outside: Path) -> dict[str, str]:
    return {
        "test_hostile.py": f"""
import os, socket, time

def test_open_a_socket():
    s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
    s.sendall(b"escaped")

def test_write_outside_the_workspace():
    for target in ({str(outside / "pwned")!r}, "/usr/pwned", "/etc/pwned"):
        try:
            with open(target, "w") as f:
                f.write("x")
        except OSError:
            continue
        raise SystemExit(0)
    assert False, "no write got out"

def test_read_the_api_key():
    found = os.environ.get("ANTHROPIC_API_KEY", "")
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                found += open(f"/proc/{{name}}/environ", "rb").read().decode(errors="replace")
            except OSError:
                pass
    assert {CANARY!r} in found

def test_fork_without_bound():
    children = []
    try:
        for _ in range(5000):
            pid = os.fork()
            if pid == 0:
                time.sleep(2)
                os._exit(0)
            children.append(pid)
    finally:
        for pid in children:
            os.waitpid(pid, 0)
    assert len(children) == 5000

def test_allocate_without_bound():
    hoard = []
    for _ in range(64):
        hoard.append(bytearray(256 << 20))  # 16 GiB in all
    assert len(hoard) == 64
"""
    }


def test_every_attack_fails_inside_and_the_juror_sees_a_failed_run(
    listener: tuple[int, list[bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, got = listener
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)
    monkeypatch.setenv("SYNOD_SANDBOX", "bwrap")
    verdict = verify({}, hostile(port, outside), timeout_s=120, memory_bytes=1 << 30)
    print(verdict.summary)
    assert verdict.reported, verdict.output
    assert not verdict.passed
    assert set(verdict.failed) == {
        f"test_hostile::{name}"
        for name in (
            "test_open_a_socket",
            "test_write_outside_the_workspace",
            "test_read_the_api_key",
            "test_fork_without_bound",
            "test_allocate_without_bound",
        )
    }, verdict.output
    assert got == []
    assert not (outside / "pwned").exists()
    assert not Path("/usr/pwned").exists()
    # The juror's reading of it: a failed run with the failing tests named.
    run = run_of(verdict, 1.0)
    assert run.passed is False
    assert "test_fork_without_bound" in run.summary


def test_files_written_in_the_workspace_stay_in_the_sandbox(tmp_path: Path) -> None:
    tests = {
        "test_w.py": "import pathlib\n\ndef test_w():\n"
        "    pathlib.Path('made.txt').write_text('x')\n"
        "    assert pathlib.Path('/workspace/made.txt').exists()\n"
        "    assert not pathlib.Path.home().joinpath('.ssh').exists()\n"
    }
    verdict = verify({}, tests, timeout_s=60)
    assert verdict.passed, verdict.output


def test_requiring_bwrap_without_it_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNOD_SANDBOX", "bwrap")
    monkeypatch.setenv("PATH", "/nonexistent")
    sandbox.bwrap_problem.cache_clear()
    try:
        with pytest.raises(ConfigError, match="apt-get install bubblewrap"):
            verify({}, {"test_x.py": "def test_x():\n    pass\n"})
    finally:
        monkeypatch.undo()
        sandbox.bwrap_problem.cache_clear()


def test_an_unknown_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNOD_SANDBOX", "docker")
    with pytest.raises(ConfigError, match="SYNOD_SANDBOX=docker"):
        verify({}, {"test_x.py": "def test_x():\n    pass\n"})
