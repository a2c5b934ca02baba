"""LocalProcessRuntime on real child processes (no broker): what it kills and what it asks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.polling import wait_until

from synod.runtimes import LocalProcessRuntime, RuntimeError_, _is_instance, request_path


@pytest.fixture
def children(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for instance, claims in (("coder-0", "coder-0"), ("coder-1", "someone-else")):
        procs[instance] = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            env={**os.environ, "SYNOD_INSTANCE": claims},
            start_new_session=True,
        )
    for claims, p in zip(("coder-0", "someone-else"), procs.values(), strict=True):
        # Until the child has exec'd, /proc shows the environment of this process.
        wait_until(
            lambda p=p, claims=claims: _is_instance(p.pid, claims),
            what=f"pid {p.pid} to run as {claims}",
            timeout_s=10,
        )
    state = {"children": [{"instance": i, "role": "coder", "pid": p.pid} for i, p in procs.items()]}
    (tmp_path / "processes.json").write_text(json.dumps(state))
    try:
        yield procs
    finally:
        for p in procs.values():
            p.kill()
            p.wait(timeout=10)


async def test_restart_kills_the_instance_and_asks_synod_up_for_a_new_one(
    tmp_path: Path, children: dict[str, subprocess.Popen[bytes]]
) -> None:
    done = await LocalProcessRuntime(tmp_path).restart("coder-0", "coder")
    assert done.startswith("SIGKILLed pid")
    assert children["coder-0"].wait(timeout=10) == -9
    assert request_path(tmp_path, "coder-0").read_text() == "coder"


async def test_a_pid_that_is_not_the_instance_any_more_is_not_killed(
    tmp_path: Path, children: dict[str, subprocess.Popen[bytes]]
) -> None:
    done = await LocalProcessRuntime(tmp_path).restart("coder-1", "coder")
    assert done == "no live process; respawn requested"
    assert children["coder-1"].poll() is None  # still running
    assert request_path(tmp_path, "coder-1").exists()


async def test_a_child_still_starting_is_left_alone(
    tmp_path: Path, children: dict[str, subprocess.Popen[bytes]]
) -> None:
    state = json.loads((tmp_path / "processes.json").read_text())
    state["children"][0]["started_at"] = time.time() - 2
    (tmp_path / "processes.json").write_text(json.dumps(state))
    done = await LocalProcessRuntime(tmp_path, min_age_s=20).restart("coder-0", "coder")
    assert "left to finish starting" in done
    assert children["coder-0"].poll() is None
    assert not request_path(tmp_path, "coder-0").exists()


def started(tmp_path: Path, ago_s: float) -> None:
    state = json.loads((tmp_path / "processes.json").read_text())
    state["children"][0]["started_at"] = time.time() - ago_s
    (tmp_path / "processes.json").write_text(json.dumps(state))


async def test_a_child_that_has_not_beaten_yet_is_left_to_start_past_min_age(
    tmp_path: Path, children: dict[str, subprocess.Popen[bytes]]
) -> None:
    """The soak's gateway: 40 s into its start, no heartbeat from this pid yet (the
    supervisor last heard its predecessor, pid 1): not killed."""
    started(tmp_path, 40)
    runtime = LocalProcessRuntime(tmp_path, min_age_s=20, start_timeout_s=120)
    done = await runtime.restart("coder-0", "coder", pid=1)
    assert "has not beaten yet; left to finish starting" in done
    assert children["coder-0"].poll() is None
    assert not request_path(tmp_path, "coder-0").exists()


async def test_a_child_that_beat_and_went_silent_is_killed_however_young(
    tmp_path: Path, children: dict[str, subprocess.Popen[bytes]]
) -> None:
    started(tmp_path, 2)
    runtime = LocalProcessRuntime(tmp_path, min_age_s=20)
    done = await runtime.restart("coder-0", "coder", pid=children["coder-0"].pid)
    assert done.startswith("SIGKILLed pid")
    assert children["coder-0"].wait(timeout=10) == -9


async def test_a_start_that_outlasts_start_timeout_is_killed(
    tmp_path: Path, children: dict[str, subprocess.Popen[bytes]]
) -> None:
    started(tmp_path, 130)
    runtime = LocalProcessRuntime(tmp_path, start_timeout_s=120)
    done = await runtime.restart("coder-0", "coder", pid=1)
    assert done.startswith("SIGKILLed pid")
    assert children["coder-0"].wait(timeout=10) == -9


async def test_unknown_instances_and_missing_state_are_clear_errors(
    tmp_path: Path, children: dict[str, subprocess.Popen[bytes]]
) -> None:
    with pytest.raises(RuntimeError_, match="not a child"):
        await LocalProcessRuntime(tmp_path).restart("coder-9", "coder")
    with pytest.raises(RuntimeError_, match="no synod up state"):
        await LocalProcessRuntime(tmp_path / "nowhere").restart("coder-0", "coder")
    with pytest.raises(RuntimeError_, match="--replicas"):
        await LocalProcessRuntime(tmp_path).scale("coder", 3)
