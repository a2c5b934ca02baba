"""Reading tasks back: `synod.task-events` and `synod.results` folded into `TaskView`s."""

from __future__ import annotations

from pathlib import Path

from synod.core.taskview import TaskIndex, TaskView
from synod.errors import DecodeError
from synod.transport.authorship import Authorship, AuthorshipSettings, Keyring
from synod.transport.dispatcher import RawRecord
from synod.transport.reader import PartitionReader, topic_partitions
from synod.transport.topics import RESULTS, TASK_EVENTS, topic_name
from synod.wire import Codec

_POLL_MS = 200


class TaskReader:
    """Reads `synod.task-events` and `synod.results` from the beginning into a TaskIndex.

    Group-less: nothing is committed and nothing is shared with other readers.
    With a task id, only the partition holding that task is read (the producer's
    partitioner on the key), and other tasks' records are skipped.
    """

    def __init__(
        self,
        bootstrap: str,
        prefix: str = "",
        task_id: str | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.task_id = task_id
        self.task_events = topic_name(TASK_EVENTS, prefix)
        self.results = topic_name(RESULTS, prefix)
        self.codec = codec or Codec()
        self.index = TaskIndex()
        self.undecodable = 0
        # With SYNOD_KEYRING_FILE (cli.env of `synod up --secure`), what no service
        # would act on is not shown as the task's either: the host's verdict.
        ring = AuthorshipSettings().keyring_file
        self.authorship = Authorship(None, Keyring.load(Path(ring)) if ring else None)
        self.forged = 0
        self._reader = PartitionReader(bootstrap, client_id="synod-cli", fetch_records=1_000)

    async def __aenter__(self) -> TaskReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        key = self.task_id.encode() if self.task_id is not None else None
        partitions = await topic_partitions(
            self.bootstrap, [self.task_events, self.results], key=key
        )
        await self._reader.start()
        await self._reader.assign(partitions)

    async def stop(self) -> None:
        await self._reader.stop()

    async def poll(self, timeout_ms: int = _POLL_MS) -> list[TaskView]:
        """One fetch; the views it changed, in the order they changed."""
        return self._apply_all(await self._reader.poll(timeout_ms / 1000))

    def _apply_all(self, records: list[RawRecord]) -> list[TaskView]:
        changed: dict[str, TaskView] = {}
        for record in records:
            logged = record.topic == self.task_events
            view = self._apply(record.value, record.offset if logged else None, record.topic)
            if view is not None:
                changed[view.task_id] = view
        return list(changed.values())

    def _apply(
        self, value: bytes | None, log_offset: int | None, topic: str = ""
    ) -> TaskView | None:
        try:
            envelope = self.codec.decode(value if value is not None else b"")
        except DecodeError:
            self.undecodable += 1  # what cannot be read cannot be shown; the rest can
            return None
        if self.task_id is not None and envelope.task_id != self.task_id:
            return None
        if not self.authorship.check(topic, envelope, "cli", "synod-cli", report=False):
            self.forged += 1
            return None
        return self.index.apply(envelope, log_offset)

    async def read_to_end(self, *, log_only: bool = False, timeout_s: float = 60.0) -> None:
        """Read until what the topics hold now (or just the task log's partitions)."""
        wanted = [
            tp for tp in self._reader.partitions if not log_only or tp.topic == self.task_events
        ]
        async for batch in self._reader.batches_to_end(timeout_s, only=wanted):
            self._apply_all(batch)


__all__ = ["TaskReader"]
