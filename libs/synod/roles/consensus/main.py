"""`python -m synod_services.consensus`: the consensus service process."""

from __future__ import annotations

import argparse
import asyncio
import sys

from synod.roles.consensus.service import install
from synod.service.host import ServiceContext, run_service

ENV = [
    "SYNOD_BOOTSTRAP",
    "SYNOD_TOPIC_PREFIX",
    "SYNOD_INSTANCE",
    "SYNOD_SESSION_TIMEOUT_MS",
    "SYNOD_HEARTBEAT_INTERVAL_MS",
    "SYNOD_DRAIN_TIMEOUT_S",
    "SYNOD_HEALTH_PORT",
    "SYNOD_LOG_LEVEL",
    "SYNOD_CONSENSUS_TICK_INTERVAL_S",
    "SYNOD_CONSENSUS_COMMIT_INTERVAL_S",
]


async def _run() -> int:
    stop = asyncio.Event()
    failures: list[BaseException] = []

    def on_failure(exc: BaseException) -> None:
        failures.append(exc)
        stop.set()

    async def setup(ctx: ServiceContext) -> None:
        install(ctx, on_failure)

    status = await run_service("consensus", setup, stop=stop, global_telemetry=True)
    return 1 if failures else status


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m synod_services.consensus",
        description=(
            "Consensus service: folds synod.votes (group synod.consensus) with the consensus "
            "core and publishes round requests to synod.votes and one Decision per proposal "
            "to synod.task-events."
        ),
        epilog="settings come from the environment: " + ", ".join(ENV),
    )
    parser.parse_args()
    sys.exit(asyncio.run(_run()))
