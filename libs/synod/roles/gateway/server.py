"""The gateway process: HTTP server, Kafka publisher, the view consumer, heartbeats.

HTTP comes up first and Kafka is connected in the background, retrying: while
the broker is unreachable `/healthz` answers, `/readyz` says why the gateway is
not ready, and submissions get 503 (Kubernetes keeps traffic away meanwhile).

Stopping (SIGTERM/SIGINT via `__main__`): event streams end, the listener
closes and in-flight requests finish within `SYNOD_DRAIN_TIMEOUT_S`, a last
`stopping` heartbeat goes out, then the view consumer and the publisher stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError

from synod.core.resilience.backoff import RetryPolicy
from synod.core.taskview import TaskIndex
from synod.core.workspace.records import Materialised
from synod.errors import BrokerError
from synod.settings import KafkaSettings
from synod.transport import Publisher
from synod.transport.authorship import Authorship
from synod.transport.topics import (
    DLQ,
    DLQ_REPLAYS,
    HEARTBEATS,
    RESULTS,
    SUPERVISOR,
    TASK_EVENTS,
    VOTES,
    TopicSpec,
    topic_name,
)
from synod.transport.workspace import materialise
from synod.wire import ContentType, Envelope, Heartbeat, Sender

from .app import create_app
from .operations import Operations
from .settings import GatewaySettings
from .view import SideHandler, TaskFeed, ViewConsumer

log = logging.getLogger("synod.gateway")

# Connecting to Kafka is retried until it works or the gateway stops; the
# random source only spreads the retries.
CONNECT_RETRY = RetryPolicy(base_s=0.5, cap_s=10.0, max_attempts=None)
_jitter = random.Random()


class _Link:
    """The publisher as the API sees it: refuses (503) until Kafka is connected."""

    def __init__(self) -> None:
        self.publisher: Publisher | None = None

    async def publish(
        self, topic: str, envelope: Envelope[Any], content_type: ContentType = "avro"
    ) -> Any:
        if self.publisher is None:
            raise BrokerError("not connected to Kafka yet")
        return await self.publisher.publish(topic, envelope, content_type)

    async def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        if self.publisher is None:
            raise BrokerError("not connected to Kafka yet")
        return await self.publisher.publish_raw(topic, value, key, headers)


class Gateway:
    def __init__(self, settings: GatewaySettings, kafka: KafkaSettings) -> None:
        self.settings = settings
        self.kafka = kafka
        self.sender = Sender(role="gateway", instance=settings.instance)
        self.feed = TaskFeed(TaskIndex(settings.gateway_index_capacity))
        self.operations = Operations()
        self.link = _Link()
        self.view: ViewConsumer | None = None
        self.port: int | None = None
        self.last_error: str | None = None
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._connector: asyncio.Task[None] | None = None
        self._beats: asyncio.Task[None] | None = None

    def topic(self, spec: TopicSpec) -> str:
        return topic_name(spec, self.kafka.topic_prefix)

    @property
    def url(self) -> str:
        return f"http://{self.settings.gateway_host}:{self.port}"

    async def start(self) -> None:
        s = self.settings
        app = create_app(
            self.link,
            self.feed,
            topic_prefix=self.kafka.topic_prefix,
            tokens=s.tokens(),
            instance=s.instance,
            ready=self.ready,
            keepalive_s=s.gateway_keepalive_s,
            publish_timeout_s=s.gateway_publish_timeout_s,
            outcome_grace_s=s.gateway_outcome_grace_s,
            operations=self.operations,
            raw_publisher=self.link,
            workspace=self.workspace,
            trace_url=s.console_trace_url,
            rate_per_s=s.gateway_rate_per_s,
            rate_burst=s.gateway_rate_burst,
            request_timeout_s=s.gateway_request_timeout_s,
            cors_origins=s.gateway_cors_origins,
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=s.drain_timeout_s)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.gateway_host, s.gateway_port)
        await site.start()
        addresses = self._runner.addresses  # the port actually bound, when asked for 0
        self.port = int(addresses[0][1]) if addresses else s.gateway_port
        log.info("gateway listening", extra={"url": self.url})
        self._connector = asyncio.create_task(self._connect(), name="synod-gateway-connect")

    async def _connect(self) -> None:
        """Connect the publisher and the view, retrying with backoff until stopped."""
        attempt = 0
        while not self._stopping.is_set():
            # Signed like every service's sends (its heartbeats reach the supervisor).
            authorship = Authorship.from_environment(self.settings.instance)
            publisher = Publisher(
                self.kafka.bootstrap, client_id=self.settings.instance, signer=authorship.signer
            )
            view = ViewConsumer(
                self.kafka.bootstrap,
                self.feed,
                task_events_topic=self.topic(TASK_EVENTS),
                results_topic=self.topic(RESULTS),
                votes_topic=self.topic(VOTES),
                side_topics=self._side_topics(),
                client_id=self.settings.instance,
                window_s=self.settings.gateway_view_window_s or None,
                authorship=authorship,
            )
            try:
                await publisher.start()
                await view.start()
            except (KafkaError, OSError) as exc:
                for part in (view, publisher):
                    with contextlib.suppress(Exception):
                        await part.stop()
                self.last_error = f"cannot reach Kafka at {self.kafka.bootstrap}: {exc!r}"
                log.warning("kafka not reachable; retrying", extra={"error": repr(exc)})
                delay = CONNECT_RETRY.next_delay(attempt, "transient", _jitter)
                assert delay is not None  # no attempt limit: until connected or stopped
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            self.link.publisher, self.view, self.last_error = publisher, view, None
            log.info("connected to kafka", extra={"bootstrap": self.kafka.bootstrap})
            self._beats = asyncio.create_task(self._heartbeats(), name="synod-gateway-beats")
            return

    def _side_topics(self) -> dict[str, SideHandler]:
        """The console's agents and dead letters, read by the view consumer."""
        ops = self.operations
        return {
            self.topic(HEARTBEATS): lambda p, o, k, v: ops.heartbeat_record(v),
            self.topic(SUPERVISOR): lambda p, o, k, v: ops.supervisor_record(v),
            self.topic(DLQ): lambda p, o, k, v: ops.dead_letter_record(v, p, o),
            self.topic(DLQ_REPLAYS): lambda p, o, k, v: ops.replay_record(k, v),
        }

    async def workspace(self, task_id: str, winners: dict[str, str]) -> Materialised:
        """The task's files as synod.workspace holds them now (the console's files tab)."""
        if self.view is None:
            raise BrokerError("not connected to Kafka yet")
        return await materialise(self.kafka.bootstrap, self.kafka.topic_prefix, task_id, winners)

    async def _heartbeats(self) -> None:
        seq = 0
        while True:
            stopping = self._stopping.is_set()
            body = Heartbeat(
                instance=self.settings.instance,
                role="gateway",
                seq=seq,
                state="stopping" if stopping else "running",
                in_flight=[],
                # Which process beats: the local runtime tells a new one still
                # starting from the one that went silent (synod.runtimes).
                pid=os.getpid(),
                host=socket.gethostname(),
            )
            beat = Envelope.new(body, sender=self.sender)
            try:
                await self.link.publish(self.topic(HEARTBEATS), beat)
            except (KafkaError, BrokerError, OSError) as exc:
                # A missed beat is the signal the supervisor watches for.
                log.warning("heartbeat not published", extra={"error": repr(exc)})
            if stopping:
                return
            seq += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.heartbeat_interval_s)

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        view = self.view
        details: dict[str, Any] = {
            "publisher_started": self.link.publisher is not None,
            "view_started": view is not None,
        }
        if self.last_error:
            details["error"] = self.last_error
        if view is None:
            return False, details
        details.update(view.details())
        details["broker_reachable"] = await view.ping()
        ok = bool(
            details["publisher_started"]
            and details["broker_reachable"]
            and details["view_assigned_partitions"]
        )
        return ok, details

    async def stop(self) -> None:
        self._stopping.set()
        if self._connector is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        self.feed.close()  # event streams end now, not at the drain bound
        if self._runner is not None:
            await self._runner.cleanup()
        if self._beats is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._beats
        if self.view is not None:
            await self.view.stop()
        if self.link.publisher is not None:
            await self.link.publisher.stop()
        log.info("gateway stopped")


__all__ = ["Gateway"]
