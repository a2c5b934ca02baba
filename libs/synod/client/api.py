"""`AsyncClient` and `Client`: submit a task, read its status, stream its events, wait for it.

They talk to Kafka directly, as the CLI does: a task goes to `synod.tasks` as
the short form's envelope (so a task id is the same message from every entry
point, and submitting it twice is one task), and a task is read back from its
partition of `synod.task-events` and `synod.results` with a group-less reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka.errors import KafkaError

from synod.client.cluster import Cluster, find_cluster
from synod.client.reader import TaskReader
from synod.core.taskview import TaskStatus, TaskView
from synod.errors import BrokerError
from synod.transport import Publisher
from synod.transport.topics import TASKS, topic_name
from synod.wire import Codec, Envelope, Sender, TaskSubmitted

T = TypeVar("T")


@dataclass(frozen=True)
class Submitted:
    """Where a submitted task went."""

    task_id: str
    message_id: str
    topic: str
    partition: int
    offset: int


def submission(task_id: str, body: TaskSubmitted, sender: Sender) -> Envelope[TaskSubmitted]:
    """The task's envelope as every entry point makes it (the short form's decoder)."""
    short = {"task_id": task_id, **body.model_dump(mode="json")}
    decoded = Codec().decode(json.dumps(short).encode())
    envelope: Envelope[TaskSubmitted] = decoded.model_copy(update={"sender": sender})
    return envelope


def _instance() -> str:
    return os.environ.get("SYNOD_INSTANCE") or f"client-{socket.gethostname()}"


class AsyncClient:
    """Synod over Kafka, in asyncio. `async with AsyncClient() as synod: ...`."""

    def __init__(
        self,
        bootstrap: str | None = None,
        prefix: str | None = None,
        *,
        cluster: Cluster | None = None,
        instance: str | None = None,
        announce: bool = False,
    ) -> None:
        self.cluster = cluster or find_cluster(bootstrap, prefix, announce=announce)
        self.sender = Sender(role="client", instance=instance or _instance())
        self._publisher: Publisher | None = None
        # Concurrent first submits would each start a producer and leak all but one.
        self._publisher_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._publisher is not None:
            publisher, self._publisher = self._publisher, None
            await publisher.stop()

    async def _started_publisher(self) -> Publisher:
        async with self._publisher_lock:
            return await self._start_publisher()

    async def _start_publisher(self) -> Publisher:
        if self._publisher is None:
            publisher = Publisher(self.cluster.bootstrap, client_id="synod-client")
            try:
                await publisher.start()
            except (KafkaError, OSError) as exc:
                # A producer that failed to start still holds a client: close it,
                # or asyncio prints "Unclosed AIOKafkaProducer" at exit.
                with contextlib.suppress(Exception):
                    await publisher.stop()
                raise self.cluster.unreachable(type(exc).__name__) from exc
            self._publisher = publisher
        return self._publisher

    async def submit_envelope(self, envelope: Envelope[TaskSubmitted]) -> Submitted:
        assert envelope.task_id is not None
        topic = topic_name(TASKS, self.cluster.prefix)
        publisher = await self._started_publisher()
        try:
            meta = await publisher.publish(topic, envelope)
        except KafkaError as exc:
            raise BrokerError(f"publishing to {topic} failed: {exc}") from exc
        return Submitted(envelope.task_id, envelope.message_id, topic, meta.partition, meta.offset)

    async def submit(
        self, goal: str | TaskSubmitted, *, task_id: str | None = None, **fields: Any
    ) -> Submitted:
        """Put a task on synod.tasks. `fields`: any TaskSubmitted field (reviewers, plan, ...)."""
        body = goal if isinstance(goal, TaskSubmitted) else TaskSubmitted(goal=goal, **fields)
        envelope = submission(task_id or os.urandom(16).hex(), body, self.sender)
        return await self.submit_envelope(envelope)

    def reader(self, task_id: str | None = None) -> TaskReader:
        return TaskReader(self.cluster.bootstrap, self.cluster.prefix, task_id)

    async def view(self, task_id: str) -> TaskView | None:
        """The task as its log holds it now; None if nothing of it is there."""
        async with self._reading(task_id) as reader:
            await reader.read_to_end()
            return reader.index.get(task_id)

    async def status(self, task_id: str) -> TaskStatus | None:
        view = await self.view(task_id)
        return view.status() if view is not None else None

    async def tasks(self) -> list[TaskView]:
        """Every task the topics hold now, newest first."""
        async with self._reading(None) as reader:
            await reader.read_to_end()
            return list(reader.index)

    async def events(
        self, task_id: str, *, known: Envelope[Any] | None = None
    ) -> AsyncGenerator[Envelope[Any], None]:
        """The task's envelopes in log order, each once, live until its outcome."""
        async for view in self.follow(task_id, known=known):
            for envelope in view.entries_in_order():
                yield envelope

    async def follow(
        self, task_id: str, *, known: Envelope[Any] | None = None
    ) -> AsyncIterator[_NewEntries]:
        """Batches of the task's new envelopes in log order, until its outcome."""
        shown: set[str] = set()
        async with self._reading(task_id) as reader:
            if known is not None:
                reader.index.apply(known)
            while True:
                current = reader.index.get(task_id)
                if current is not None and current.terminal:
                    # The outcome may be read on synod.results ahead of the log;
                    # everything before it is in the log by now.
                    await reader.read_to_end(log_only=True)
                    yield _NewEntries(reader.index.get(task_id) or current, shown, final=True)
                    return
                await reader.poll()
                current = reader.index.get(task_id)
                if current is not None:
                    yield _NewEntries(current, shown, final=False)

    async def wait(
        self,
        task_id: str,
        timeout_s: float = 600.0,
        *,
        on_change: Callable[[TaskView], None] | None = None,
        known: Envelope[Any] | None = None,
    ) -> TaskView:
        """Until the task's outcome; TimeoutError after `timeout_s`."""
        last: TaskView | None = None
        async with asyncio.timeout(timeout_s):
            async for batch in self.follow(task_id, known=known):
                last = batch.view
                if on_change is not None:
                    on_change(batch.view)
        assert last is not None
        return last

    @contextlib.asynccontextmanager
    async def _reading(self, task_id: str | None) -> AsyncIterator[TaskReader]:
        reader = self.reader(task_id)
        try:
            await reader.start()
        except (KafkaError, OSError, BrokerError) as exc:  # the reader's metadata read says
            # BrokerError when no broker answers
            with contextlib.suppress(Exception):
                await reader.stop()
            raise self.cluster.unreachable(type(exc).__name__) from exc
        try:
            yield reader
        finally:
            await reader.stop()


class _NewEntries:
    """A view and the part of it not yet handed out (log order; results held for the log)."""

    def __init__(self, view: TaskView, shown: set[str], *, final: bool) -> None:
        self.view = view
        self.final = final
        self._shown = shown

    def entries_in_order(self) -> Iterator[Envelope[Any]]:
        for envelope, log_offset in self.view.entries():
            if envelope.message_id in self._shown:
                continue
            if log_offset is None and envelope.type != "TaskSubmitted" and not self.final:
                return  # read on synod.results ahead of the log: wait for the log's order
            self._shown.add(envelope.message_id)
            yield envelope


class Client:
    """The same, blocking: each call runs on the client's own event loop."""

    def __init__(self, bootstrap: str | None = None, prefix: str | None = None, **kw: Any):
        self._loop = asyncio.new_event_loop()
        self._async = AsyncClient(bootstrap, prefix, **kw)

    @property
    def cluster(self) -> Cluster:
        return self._async.cluster

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self._async.close())
            self._loop.close()

    def submit(
        self, goal: str | TaskSubmitted, *, task_id: str | None = None, **fields: Any
    ) -> str:
        submitted: Submitted = self._run(self._async.submit(goal, task_id=task_id, **fields))
        return submitted.task_id

    def status(self, task_id: str) -> TaskStatus | None:
        status: TaskStatus | None = self._run(self._async.status(task_id))
        return status

    def wait(self, task_id: str, timeout_s: float = 600.0) -> TaskStatus:
        view: TaskView = self._run(self._async.wait(task_id, timeout_s))
        return view.status()

    def events(self, task_id: str) -> Iterator[Envelope[Any]]:
        """The task's envelopes in log order until its outcome (blocking between them)."""
        stream = self._async.events(task_id)
        try:
            while True:
                try:
                    yield self._run(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._run(stream.aclose())


__all__ = ["AsyncClient", "Client", "Submitted", "submission"]
