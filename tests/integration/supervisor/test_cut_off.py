"""A supervisor cut from the broker by a real TCP partition restarts nobody while cut,
and still restarts an agent that really died once the cut heals (docs/chaos.md).

Three agents beat on the direct path to the broker; the supervisor reaches it only
through zone z1's toxiproxy proxy (synod.dev.netfaults), so `cut("z1")` closes every
connection it has (fetches, group coordinator, producer) while its ticks go on. One
agent dies (its heartbeats stop, no `stopping` beat) during the cut. The runtime
records what it is asked: what a restart does is not under test here
(test_restart_dead.py), whom the supervisor judges dead is.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from tests.polling import wait_until_async

from synod.dev.netfaults import NetFaults
from synod.roles.supervisor.service import SupervisorService, SupervisorSettings, install
from synod.runtimes import NoRuntime
from synod.service.host import ServiceContext, _heartbeats

from .team import Team

pytestmark = pytest.mark.timeout(240)
AGENTS = {"coder-0": "coder", "coder-1": "coder", "reviewer-0": "reviewer"}
DIES = "coder-1"
CUT_S = 20.0  # longer than a death takes to detect (about 5 s here) and the session timeout


class RecordingRuntime(NoRuntime):
    """Records the restarts it is asked for (scaling stays refused, as NoRuntime's)."""

    name = "recording"

    def __init__(self) -> None:
        self.restarts: list[tuple[float, str]] = []

    async def restart(self, instance: str, role: str, host: str = "", pid: int = 0) -> str:
        self.restarts.append((time.monotonic(), instance))
        return "recorded"


async def test_a_cut_supervisor_restarts_nobody_and_after_the_heal_the_dead_one(
    kafka: Any, netfaults: NetFaults
) -> None:
    team = Team(kafka.bootstrap)
    await team.create_topics()
    runtime = RecordingRuntime()
    services: list[SupervisorService] = []
    settings = SupervisorSettings(
        runtime="none", acceptable_pause_s=1.0, bootstrap_timeout_s=5.0, escalate=False
    )

    def supervise(ctx: ServiceContext) -> None:
        service = install(ctx, settings)
        service.runtime = runtime
        services.append(service)

    beats: dict[str, asyncio.Task[None]] = {}
    never = asyncio.Event()
    try:
        await team.add("supervisor", "supervisor-0", supervise, bootstrap=netfaults.bootstrap("z1"))
        [service] = services
        await team.assigned()
        for name, role in AGENTS.items():
            ctx = await team.add(role, name, lambda ctx: None)  # type: ignore[arg-type]
            beats[name] = asyncio.create_task(_heartbeats(ctx, never))

        def steady() -> bool:
            seen = service.core.instances
            return all(name in seen and seen[name].seq >= 8 for name in AGENTS)

        await wait_until_async(steady, what="8 heartbeats of every agent", timeout_s=60)
        assert runtime.restarts == []

        netfaults.cut("z1")
        cut_at = time.monotonic()
        await wait_until_async(
            lambda: service.core.view_stale, what="the supervisor's view to go stale", timeout_s=10
        )
        stale_after = time.monotonic() - cut_at
        beats[DIES].cancel()  # dies during the cut: silent, no `stopping` beat
        await asyncio.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))  # the cut lasts
        assert runtime.restarts == [], "restarted while its own view was cut off"
        netfaults.heal("z1")
        healed_at = time.monotonic()

        await wait_until_async(
            lambda: any(name == DIES for _, name in runtime.restarts),
            what=f"the supervisor to restart {DIES}",
            timeout_s=90,
        )
        restarted_at = next(t for t, name in runtime.restarts if name == DIES)
        # The living are still beating: give a wrong judgement of them the same time again.
        await wait_until_async(
            lambda: time.monotonic() > restarted_at + 8.0, what="8 s more", timeout_s=20
        )
        assert [name for _, name in runtime.restarts] == [DIES]
        print(
            f"\ncut {CUT_S:.0f} s: view stale {stale_after:.1f} s after the cut; "
            f"{DIES} restarted {restarted_at - healed_at:.1f} s after the heal; nobody else"
        )
    finally:
        netfaults.heal("z1")  # before the close: a cut consumer's stop waits for the broker
        for task in beats.values():
            task.cancel()
        await asyncio.gather(*beats.values(), return_exceptions=True)
        await team.close()
