"""A SIGKILLed (or SIGSTOPped) instance is detected by its missing heartbeats and
restarted through LocalProcessRuntime.

`synod up` (LocalRun) runs researcher-0 and the supervisor as processes, with
`respawn_exited=False`: a child that dies stays dead unless the supervisor
asks for it. We SIGKILL researcher-0; the supervisor's phi-accrual detector
suspects it, LocalProcessRuntime drops a restart request, `synod up` starts it
again, and a new process heartbeats under the same instance id. The same for
a SIGSTOPped (wedged) one that `synod up`, which only sees exits, would
leave alone. Prints the
time from the kill to the restart and to the first new heartbeat.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from synod.dev.localkafka import free_port
from synod.dev.localrun import LocalRun
from synod.transport.topics import HEARTBEATS, topic_name
from synod.wire import Codec, Heartbeat

pytestmark = pytest.mark.timeout(240)
CODEC = Codec()
ENV = {
    "SYNOD_LLM_BACKEND": "sim",
    # Detect within a few seconds: pause 1 s over a 1 s rhythm.
    "SYNOD_SUPERVISOR_ACCEPTABLE_PAUSE_S": "1.0",
    "SYNOD_SUPERVISOR_BOOTSTRAP_TIMEOUT_S": "5.0",
}


async def _heartbeats_until(
    run: LocalRun, done: Any, timeout_s: float
) -> list[tuple[float, Heartbeat]]:
    consumer = AIOKafkaConsumer(
        topic_name(HEARTBEATS, run.prefix),
        bootstrap_servers=run.bootstrap,
        auto_offset_reset="latest",
        group_id=f"check-{uuid.uuid4().hex}",
    )
    await consumer.start()
    seen: list[tuple[float, Heartbeat]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while not done(seen):
            assert time.monotonic() < deadline, f"timed out; saw {len(seen)} heartbeats"
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    body = CODEC.decode(r.value).body
                    if isinstance(body, Heartbeat):
                        seen.append((time.time(), body))
    finally:
        await consumer.stop()
    return seen


@pytest.mark.parametrize(
    ("signum", "respawn_exited", "steady_beats"),
    [
        # Dead: synod up is told not to respawn it, so only the supervisor can.
        (signal.SIGKILL, False, 5),
        # Wedged (alive, silent): synod up sees nothing wrong; the supervisor
        # kills and respawns it. Young (under min_age_s, 20 s) and still killed:
        # the supervisor has heard this pid beat, so it is not starting.
        (signal.SIGSTOP, True, 5),
    ],
    ids=["sigkill", "sigstop"],
)
async def test_a_silent_instance_is_restarted_by_the_supervisor(
    kafka: Any, tmp_path: Path, signum: int, respawn_exited: bool, steady_beats: int
) -> None:
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    run = LocalRun(
        bootstrap=kafka.bootstrap,
        prefix=f"restart{uuid.uuid4().hex[:6]}.",
        run_dir=tmp_path,
        gateway_port=free_port(),
        replicas={"researcher": 1, "supervisor": 1},
        respawn_exited=respawn_exited,
    )
    stop = asyncio.Event()
    watch: asyncio.Task[None] | None = None
    try:
        await run.start()
        await run.wait_ready()
        watch = asyncio.create_task(run.watch(stop))

        def steady(seen: list[tuple[float, Heartbeat]]) -> bool:
            # The supervisor has a rhythm for researcher-0 once it sent a few.
            return sum(h.instance == "researcher-0" for _, h in seen) >= steady_beats

        await _heartbeats_until(run, steady, 60)
        [victim] = [c for c in run.children if c.instance == "researcher-0"]
        assert victim.proc is not None
        old_pid = victim.proc.pid
        killed_at = time.time()
        os.kill(old_pid, signum)

        def back(seen: list[tuple[float, Heartbeat]]) -> bool:
            return any(h.instance == "researcher-0" and h.pid not in (0, old_pid) for _, h in seen)

        seen = await _heartbeats_until(run, back, 120)
        first_new = min(t for t, h in seen if h.instance == "researcher-0" and h.pid != old_pid)
        state = json.loads((tmp_path / "processes.json").read_text())
        [child] = [c for c in state["children"] if c["instance"] == "researcher-0"]
        assert child["restarts"] == 1
        assert child["pid"] != old_pid
        log = (tmp_path / "supervisor-0.log").read_text()
        restarts = [json.loads(line) for line in log.splitlines() if '"event": "restart"' in line]
        assert restarts, "the supervisor logged no restart"
        assert restarts[0].get("target") == "researcher-0"
        assert restarts[0].get("reason") == "dead"
        decided = datetime.fromisoformat(restarts[0]["ts"]).timestamp()
        print(
            f"\n{signal.Signals(signum).name}: "
            f"kill -> restart decided: {decided - killed_at:.1f} s; "
            f"kill -> heartbeat from the new process: {first_new - killed_at:.1f} s "
            f"(phi threshold 8, acceptable pause {ENV['SYNOD_SUPERVISOR_ACCEPTABLE_PAUSE_S']} s)"
        )
    finally:
        stop.set()
        if watch is not None:
            await watch
        run.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
