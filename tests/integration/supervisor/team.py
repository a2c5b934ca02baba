"""A team of services in this process, on the real broker, with backends chosen per test.

Each service gets its own ServiceContext (instance id, publisher, consumers)
exactly as `run_service` builds it; only the LLM backend is the test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tests.polling import wait_until_async

from synod.service.host import ServiceContext, ServiceSettings, _heartbeats
from synod.settings import KafkaSettings
from synod.transport.admin import ensure_topics
from synod.transport.topics import TASK_EVENTS, TASKS, topic_name
from synod.wire import Codec, Envelope, Sender, TaskCompleted, TaskFailed
from synod.wire.messages import Role

CODEC = Codec()


@dataclass
class Team:
    bootstrap: str
    prefix: str = field(default_factory=lambda: f"sup{uuid.uuid4().hex[:6]}.")
    contexts: list[ServiceContext] = field(default_factory=list)
    jobs: list[asyncio.Task[Any]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def create_topics(self) -> None:
        await ensure_topics(self.bootstrap, prefix=self.prefix)

    async def add(
        self,
        role: Role,
        instance: str,
        setup: Callable[[ServiceContext], Awaitable[Any] | Any],
        *,
        heartbeats: bool = False,
        bootstrap: str | None = None,
    ) -> ServiceContext:
        """`bootstrap`: another way to the same broker (a zone's proxy, to cut it alone)."""
        kafka = KafkaSettings(bootstrap=bootstrap or self.bootstrap, topic_prefix=self.prefix)
        service = ServiceSettings(instance=instance, health_port=-1, drain_timeout_s=2.0)
        ctx = ServiceContext(role, kafka, service)
        await ctx.publisher.start()
        result = setup(ctx)
        if asyncio.iscoroutine(result):
            await result
        for consumer in ctx.consumers:
            await consumer.start()
        self.jobs += [asyncio.create_task(job()) for job in ctx.background]
        if heartbeats:
            self.jobs.append(asyncio.create_task(_heartbeats(ctx, self.stop)))
        self.contexts.append(ctx)
        return ctx

    async def assigned(self, timeout_s: float = 60.0) -> None:
        """Until every consumer holds partitions and has had a fetch answered for each.

        A 'latest' consumer (the supervisor's) must, before tasks go in: holding a
        partition is not yet having a position in it, and a record published before
        its first fetch is never read.
        """
        unassigned = [ctx.instance for ctx in self.contexts for c in ctx.consumers]

        def assigned() -> bool:
            unassigned[:] = [
                ctx.instance
                for ctx in self.contexts
                for c in ctx.consumers
                if not c.assigned or c.answered_at() is None
            ]
            return not unassigned

        await wait_until_async(
            assigned, what=f"partitions for {unassigned}", timeout_s=timeout_s, interval_s=0.2
        )

    async def close(self) -> None:
        self.stop.set()
        for ctx in self.contexts:
            for consumer in ctx.consumers:
                with contextlib.suppress(Exception):
                    await consumer.stop()
        for job in self.jobs:
            job.cancel()
        await asyncio.gather(*self.jobs, return_exceptions=True)
        for ctx in self.contexts:
            await ctx.publisher.stop()

    async def submit(self, envelope: Envelope[Any]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                topic_name(TASKS, self.prefix), CODEC.encode(envelope), key=envelope.key
            )
        finally:
            await producer.stop()

    async def log_of(self, task_id: str, timeout_s: float) -> list[Envelope[Any]]:
        """The task's log up to its outcome."""
        consumer = AIOKafkaConsumer(
            topic_name(TASK_EVENTS, self.prefix),
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            group_id=f"check-{uuid.uuid4().hex}",
        )
        await consumer.start()
        seen: list[Envelope[Any]] = []
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                assert time.monotonic() < deadline, (
                    f"no outcome for {task_id} in {timeout_s:.0f}s; log: "
                    + ", ".join(f"{e.type}#{e.attempt}" for e in seen)
                )
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        env = CODEC.decode(r.value)
                        if env.task_id == task_id:
                            seen.append(env)
                            if isinstance(env.body, TaskCompleted | TaskFailed):
                                return seen
        finally:
            await consumer.stop()


CLIENT = Sender(role="client", instance="test")
