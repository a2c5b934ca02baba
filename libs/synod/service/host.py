"""The process around a service's role logic.

A service says which topics it consumes and what its handlers do (`setup`);
`run_service` does the rest the same way for every role: settings, logs, the
publisher, consumers with a dead-letter sink, heartbeats on synod.heartbeats,
the health endpoints, and a graceful stop on SIGTERM/SIGINT (stop fetching,
drain in-flight work within a bound, commit, leave the group).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from synod import observability
from synod.core.resilience.registry import BREAKERS
from synod.service import logs
from synod.settings import KafkaSettings
from synod.transport import (
    ConsumerConfig,
    DeadLetterPublisher,
    Handler,
    KeyOrderedConsumer,
    Publisher,
    Received,
)
from synod.transport.authorship import Authorship
from synod.transport.causal import HANDLING, Stamper
from synod.transport.topics import DLQ, HEARTBEATS, TopicSpec, topic_name
from synod.wire import Envelope, Heartbeat, Sender
from synod.wire.messages import Role, utc_now

log = logging.getLogger("synod.service")


class ServiceSettings(BaseSettings):
    """What every service process reads (SYNOD_*)."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_", extra="ignore")

    instance: str | None = Field(default=None, description="instance id, e.g. coder-1")
    concurrency: int = Field(default=64, ge=1, description="handlers in flight per process")
    drain_timeout_s: float = Field(default=10.0, gt=0, description="bound on graceful drain")
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=0, ge=-1, description="0: any free port; -1: off")
    log_level: str = "INFO"
    causal_clocks: bool = Field(
        default=True, description="stamp and merge clocks (off only to measure what they cost)"
    )
    max_clock_skew_ms: int = Field(
        default=60_000, gt=0, description="received clocks further ahead are clamped"
    )


class ServiceContext:
    """What role logic gets: identity, topics, a publisher and consumer factory."""

    def __init__(self, role: Role, kafka: KafkaSettings, service: ServiceSettings) -> None:
        self.role = role
        self.kafka = kafka
        self.service = service
        self.instance = service.instance or f"{role}-{socket.gethostname()}-{os.getpid()}"
        self.sender = Sender(role=role, instance=self.instance)
        # Every envelope this service sends is stamped here, and every one it
        # handles merged (synod.transport.causal): clocks in one place for all roles.
        self.stamper = Stamper(self.instance, max_skew_ms=service.max_clock_skew_ms)
        # Signs what this process sends and checks who wrote what it handles
        # (synod.transport.authorship): authorship in one place for all roles.
        self.authorship = Authorship.from_environment(self.instance)
        self.publisher = Publisher(
            kafka.bootstrap,
            client_id=self.instance,
            stamper=self.stamper if service.causal_clocks else None,
            signer=self.authorship.signer,
        )
        self.consumers: list[KeyOrderedConsumer] = []
        self.in_flight: dict[str, str] = {}  # message id -> "task/step" being worked on
        self.last_progress_at: datetime | None = None
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []

    def topic(self, spec: TopicSpec | str) -> str:
        return topic_name(spec, self.kafka.topic_prefix)

    async def publish(self, spec: TopicSpec | str, envelope: Envelope[Any]) -> None:
        await self.publisher.publish(self.topic(spec), envelope)

    def consume(
        self,
        group: str,
        topics: list[TopicSpec],
        handler: Handler,
        *,
        concurrency: int | None = None,
        **config: Any,
    ) -> KeyOrderedConsumer:
        """Register a consumer; it starts with the service and stops gracefully with it."""

        async def tracked(msg: Received) -> None:
            if not self.authorship.check(msg.record.topic, msg.envelope, self.role, self.instance):
                return  # forged or unsigned: never reaches role logic
            label = in_flight_label(msg.envelope)
            self.in_flight[msg.envelope.message_id] = label
            if self.service.causal_clocks:
                self.stamper.observe(msg.record.topic, msg.envelope)
            # What the handler sends now names this message among its causes.
            handling = HANDLING.set(msg.envelope)
            try:
                await handler(msg)
                self.last_progress_at = utc_now()
            finally:
                HANDLING.reset(handling)
                self.in_flight.pop(msg.envelope.message_id, None)

        consumer = KeyOrderedConsumer(
            self.kafka.bootstrap,
            f"{self.kafka.topic_prefix}{group}",
            [self.topic(t) for t in topics],
            tracked,
            dead_letter=DeadLetterPublisher(self.publisher, self.topic(DLQ), self.sender),
            config=ConsumerConfig(
                concurrency=concurrency or self.service.concurrency,
                drain_timeout_s=self.service.drain_timeout_s,
                session_timeout_ms=self.kafka.session_timeout_ms,
                heartbeat_interval_ms=self.kafka.heartbeat_interval_ms,
                max_poll_interval_ms=self.kafka.max_poll_interval_ms,
                group_instance_id=self.instance if self.kafka.static_membership else None,
                **config,
            ),
            client_id=self.instance,
        )
        self.consumers.append(consumer)
        return consumer

    def ready(self) -> tuple[bool, dict[str, Any]]:
        details = {
            "consumers": len(self.consumers),
            "assigned_partitions": sum(len(c.assigned) for c in self.consumers),
            "fetching": all(c.running for c in self.consumers),
        }
        return bool(details["fetching"]), details


def in_flight_label(envelope: Envelope[Any]) -> str:
    """What a heartbeat shows for a message being handled: "task/step", else "task/type"."""
    step = getattr(envelope.body, "step_id", None)
    return f"{envelope.task_id or '-'}/{step or envelope.type}"


def heartbeat(ctx: ServiceContext, seq: int, state: Any, now: float) -> Heartbeat:
    """This instance as it is now: steps in hand, its breakers' states, last progress."""
    return Heartbeat(
        instance=ctx.instance,
        role=ctx.role,
        seq=seq,
        state=state,
        in_flight=sorted(ctx.in_flight.values())[:100],
        breakers=dict(BREAKERS.states(now)),
        last_progress_at=ctx.last_progress_at,
        pid=os.getpid(),
        host=socket.gethostname(),
        assigned=assigned_partitions(ctx),
    )


def assigned_partitions(ctx: ServiceContext) -> dict[str, list[int]]:
    """Per topic, the partitions this instance's consumers hold now (the groups'
    assignment): the planner routes a hedge copy to a partition another worker owns."""
    held: dict[str, set[int]] = {}
    for consumer in ctx.consumers:
        for tp in consumer.assigned:
            held.setdefault(tp.topic, set()).add(tp.partition)
    return {topic: sorted(parts) for topic, parts in sorted(held.items())}


async def _heartbeats(ctx: ServiceContext, stop: asyncio.Event) -> None:
    seq = 0
    state: Any = "running"
    while True:
        body = heartbeat(ctx, seq, state, time.monotonic())
        try:
            await ctx.publish(HEARTBEATS, Envelope.new(body, sender=ctx.sender))
        except Exception as exc:  # a missed heartbeat is what the supervisor watches for
            log.warning("heartbeat not published", extra={"error": repr(exc)})
        seq += 1
        if state == "stopping":
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ctx.service.heartbeat_interval_s)
        if stop.is_set():
            state = "stopping"


async def _health_server(ctx: ServiceContext) -> Any:
    if ctx.service.health_port < 0:
        return None
    # Deferred: aiohttp is loaded only by a service that serves health endpoints.
    from aiohttp import web

    from synod.service.health import health_app

    async def ready() -> tuple[bool, dict[str, Any]]:
        return ctx.ready()

    runner = web.AppRunner(health_app(ready))
    await runner.setup()
    site = web.TCPSite(runner, ctx.service.health_host, ctx.service.health_port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []  # the port actually bound
    port = sockets[0].getsockname()[1] if sockets else ctx.service.health_port
    log.info("health endpoints up", extra={"url": f"http://{ctx.service.health_host}:{port}"})
    return runner


async def run_service(
    role: Role,
    setup: Callable[[ServiceContext], Awaitable[None]],
    *,
    stop: asyncio.Event | None = None,
    global_telemetry: bool = False,
) -> int:
    """Run a service until SIGTERM/SIGINT (or `stop`); returns the exit status.

    `global_telemetry`: also make Synod's tracer provider the process's global one
    (only a service's own `main` says so; a host embedding Synod keeps its own).
    """
    kafka, service = KafkaSettings(), ServiceSettings()
    logs.configure(role, service.instance or role, service.log_level)
    ctx = ServiceContext(role, kafka, service)
    observability.configure_from_env(role, ctx.instance, install_global=global_telemetry)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    await ctx.publisher.start()
    await setup(ctx)
    for consumer in ctx.consumers:
        await consumer.start()
    beats = asyncio.create_task(_heartbeats(ctx, stop))
    extra = [asyncio.create_task(job()) for job in ctx.background]
    health = await _health_server(ctx)
    log.info("service started", extra={"consumers": len(ctx.consumers)})

    # Stop on a signal, or when a consumer's fetch loop dies (then exit non-zero
    # so the supervisor restarts us rather than leaving a zombie member).
    watchers: list[asyncio.Task[Any]] = [asyncio.create_task(c.wait()) for c in ctx.consumers]
    stopper: asyncio.Task[Any] = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stopper, *watchers}, return_when=asyncio.FIRST_COMPLETED)
    failed = stopper not in done
    if failed:
        log.error("a consumer stopped unexpectedly; shutting down")
    stop.set()
    for consumer in ctx.consumers:
        await consumer.stop()
    for task in extra:
        task.cancel()
    await asyncio.gather(beats, *extra, return_exceptions=True)
    if health is not None:
        await health.cleanup()
    await ctx.publisher.stop()
    for task in (*watchers, stopper):
        task.cancel()
    observability.shutdown()  # flush the spans still buffered
    log.info("service stopped")
    return 1 if failed else 0


def service_main(
    role: Role, setup: Callable[[ServiceContext], Awaitable[None]], description: str
) -> None:
    """The `python -m synod_services.<role>` entry: --help, then run."""
    env = [
        "SYNOD_BOOTSTRAP",
        "SYNOD_TOPIC_PREFIX",
        "SYNOD_INSTANCE",
        "SYNOD_CONCURRENCY",
        "SYNOD_DRAIN_TIMEOUT_S",
        "SYNOD_HEALTH_PORT",
        "SYNOD_LOG_LEVEL",
    ]
    parser = argparse.ArgumentParser(
        prog=f"python -m synod_services.{role}",
        description=description,
        epilog="settings come from the environment: " + ", ".join(env),
    )
    parser.parse_args()
    sys.exit(asyncio.run(run_service(role, setup, global_telemetry=True)))
