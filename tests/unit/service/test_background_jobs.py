"""run_service supervises every role's background jobs: a job that raises is logged
with its name, counted, restarted with backoff, and stops the service non-zero when
it keeps failing (docs/transport.md, "Background jobs").

No broker: the publisher's start/stop/publish are no-ops; run_service, its wait
loop and the supervision are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from synod.observability.metrics import BACKGROUND_JOB_FAILURES
from synod.service.host import ServiceContext, run_service
from synod.transport import Publisher


@pytest.fixture(autouse=True)
def quiet_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    for name in ("start", "stop", "publish"):
        monkeypatch.setattr(Publisher, name, nothing)
    monkeypatch.setenv("SYNOD_HEALTH_PORT", "-1")
    monkeypatch.setenv("SYNOD_JOB_BACKOFF_S", "0.01")
    monkeypatch.setenv("SYNOD_JOB_MAX_FAILURES", "3")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level  # run_service installs its JSON handler


def failures(role: str, job: str) -> float:
    return BACKGROUND_JOB_FAILURES.labels(role, job)._value.get()


def log_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


async def test_a_job_that_keeps_failing_stops_the_service_non_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = 0
    before = failures("supervisor", "sweep")

    async def sweep() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("sweep broke")

    async def setup(ctx: ServiceContext) -> None:
        ctx.add_background("sweep", sweep)

    status = await asyncio.wait_for(run_service("supervisor", setup), 10)
    assert status == 1
    assert runs == 3  # restarted twice, then given up
    assert failures("supervisor", "sweep") - before == 3
    failed = [
        d for d in log_lines(capsys.readouterr().err) if d["event"] == "background job failed"
    ]
    assert [d["failures_in_window"] for d in failed] == [1, 2, 3]
    assert all(d["role"] == "supervisor" and d["job"] == "sweep" for d in failed)
    assert "RuntimeError: sweep broke" in failed[0]["exception"]
    assert failed[-1]["action"] == "stop service"


class Follower:
    """A log follower whose first connection breaks."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.runs = 0

    async def follow(self) -> None:
        self.runs += 1
        if self.runs == 1:
            raise ConnectionError("broker blip")
        self.stop.set()  # the second run is healthy; end the test's service
        await asyncio.Event().wait()


async def test_a_job_that_fails_once_is_restarted_and_the_service_stays_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stop = asyncio.Event()
    before = failures("reviewer", "Follower.follow")
    follower = Follower(stop)

    async def setup(ctx: ServiceContext) -> None:
        ctx.background.append(follower.follow)  # unnamed: named by its qualname

    status = await asyncio.wait_for(run_service("reviewer", setup, stop=stop), 10)
    assert status == 0
    assert follower.runs == 2
    assert failures("reviewer", "Follower.follow") - before == 1
    lines = log_lines(capsys.readouterr().err)
    failed = [d for d in lines if d["event"] == "background job failed"]
    assert len(failed) == 1
    assert failed[0]["action"].startswith("restart in")
