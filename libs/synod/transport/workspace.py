"""A task's shared workspace on `synod.workspace`: reading its records, publishing them.

The records (`FileWritten`, `LeaseGranted`), their keys and the fold into
files are pure and live in `synod.core.workspace.records`; this module is the
Kafka side. Every record of a task is in the partition its task id picks
(`partition_key`, through the producer's partitioner), so reading a task's
workspace reads that one partition to its end and folds what it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from synod.core.workspace.records import (
    Materialised,
    WorkspaceRecord,
    fold,
    lease_key,
    partition_key,
    workspace_key,
)
from synod.transport.producer import Publisher
from synod.transport.reader import decode, read_to_end, topic_partitions
from synod.transport.topics import WORKSPACE, topic_name
from synod.wire import Codec, Envelope
from synod.wire.messages import Consistency, FileWritten, LeaseGranted

log = logging.getLogger("synod.team")


async def read_records(
    bootstrap: str, prefix: str, task_id: str, timeout_s: float = 30.0
) -> list[WorkspaceRecord]:
    """Every workspace record of `task_id`, in log order (the task's partition)."""
    topic = topic_name(WORKSPACE, prefix)
    partitions = await topic_partitions(bootstrap, [topic], key=partition_key(task_id))
    own = f"{task_id}/".encode()
    records = [
        r
        for r in await read_to_end(bootstrap, partitions, timeout_s=timeout_s)
        if (r.key or b"").startswith(own)
    ]
    decoded = decode(records, Codec())
    for r in decoded.undecodable:
        # Not a write (no Synod producer wrote it): nothing to fold.
        log.warning("undecodable workspace record", extra={"offset": r.offset})
    return [
        got.envelope.body
        for got in decoded.received
        if got.envelope.task_id == task_id
        and isinstance(got.envelope.body, FileWritten | LeaseGranted)
    ]


async def materialise(
    bootstrap: str,
    prefix: str,
    task_id: str,
    winners: Mapping[str, str] | None = None,
    mode: Consistency | None = None,
) -> Materialised:
    """The task's files as the topic holds them now (any service can run this)."""
    return fold(task_id, await read_records(bootstrap, prefix, task_id), winners=winners, mode=mode)


async def publish_record(publisher: Publisher, topic: str, envelope: Envelope[Any]) -> None:
    """Put one workspace record on `topic`: its own key, in its task's partition."""
    record, task_id = envelope.body, envelope.task_id or ""
    if isinstance(record, FileWritten):
        key = workspace_key(task_id, record.path, record.write_id)
    elif isinstance(record, LeaseGranted):
        key = lease_key(task_id, record.path, record.token)
    else:
        raise TypeError(f"not a workspace record: {envelope.type}")
    await publisher.publish(topic, envelope, "avro", key, partition_key=partition_key(task_id))
