"""`python -m synod_services.gateway`: run the HTTP gateway until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from pydantic import ValidationError

from synod import observability
from synod.roles.gateway.settings import ENV_VARS, GatewaySettings
from synod.service import logs
from synod.settings import KafkaSettings

DESCRIPTION = (
    "Synod gateway: accepts tasks over HTTP (POST /v1/tasks) and publishes them to "
    "synod.tasks; serves each task's status (GET /v1/tasks/{id}) and a live event "
    "stream (GET /v1/tasks/{id}/events, text/event-stream) from synod.task-events and "
    "synod.results; /healthz, /readyz and /metrics stay open without a token."
)


def _parser() -> argparse.ArgumentParser:
    width = max(len(name) for name, _ in ENV_VARS)
    epilog = "settings come from the environment:\n" + "\n".join(
        f"  {name:<{width}}  {meaning}" for name, meaning in ENV_VARS
    )
    return argparse.ArgumentParser(
        prog="python -m synod_services.gateway",
        description=DESCRIPTION,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


async def _run(settings: GatewaySettings, kafka: KafkaSettings) -> int:
    # Deferred: the server loads aiohttp and the transport; `--help` and a bad
    # setting should answer without that wait.
    from synod.roles.gateway.server import Gateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(settings, kafka)
    try:
        await gateway.start()
    except OSError as exc:  # the port is taken, or the address is not ours
        print(
            f"error: cannot listen on {settings.gateway_host}:{settings.gateway_port}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(f"gateway listening on {gateway.url}", file=sys.stderr, flush=True)
    await stop.wait()
    await gateway.stop()
    return 0


def run(argv: list[str] | None = None) -> int:
    _parser().parse_args(argv)
    try:
        settings, kafka = GatewaySettings(), KafkaSettings()
    except ValidationError as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    logs.configure("gateway", settings.instance, settings.log_level)
    observability.configure_from_env("gateway", settings.instance, install_global=True)
    try:
        return asyncio.run(_run(settings, kafka))
    finally:
        observability.shutdown()  # flush the spans still buffered


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))
