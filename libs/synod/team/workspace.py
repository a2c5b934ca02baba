"""A task's shared workspace as events on `synod.workspace`, and `materialise`.

A coder's output for a step is the files it writes: one `FileWritten` per
file, keyed `<task>/<path>` (a key per task would let compaction keep only the
task's last write). Any service rebuilds the files by folding the topic into
`synod.workspace.Workspace` (`eventual` mode: concurrent writes of a path
become siblings, counted as conflicts, never dropped silently).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from synod.agents.ids import derived_id
from synod.errors import SynodError
from synod.transport.security import client_security
from synod.transport.topics import WORKSPACE, topic_name
from synod.wire import Codec
from synod.wire.messages import FileWritten
from synod.workspace import FileWrite, VersionVector, Workspace, WorkspaceStats


def workspace_key(task_id: str, path: str) -> bytes:
    return f"{task_id}/{path}".encode()


def module_for(path: str, title: str, output: str) -> str:
    """The file a step's output becomes: the coder's file for `path`, else a stub module.

    A coder's output is `CodeOutput` JSON (`files: [{path, content}]`); the
    file it gives for `path` is used as is. Anything else still becomes valid
    Python that records the output, so materialising never yields a broken file
    that the step did not write.
    """
    try:
        parsed = json.loads(output)
    except (json.JSONDecodeError, TypeError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("files"), list):
        for f in parsed["files"]:
            if isinstance(f, dict) and f.get("path") == path and isinstance(f.get("content"), str):
                return str(f["content"])
    return f"# {title.splitlines()[0] if title else path}\nOUTPUT = {output!r}\n"


def writes_for(
    task_id: str,
    step_id: str,
    request_id: str,
    writer: str,
    files: list[str],
    title: str,
    output: str,
) -> list[FileWritten]:
    # The id derives from the request: a redelivered request writes the same ids
    # (a duplicate), a hedged copy (another request) writes new ones.
    return [
        FileWritten(
            path=path,
            content=module_for(path, title, output),
            writer=writer,
            step_id=step_id,
            write_id=derived_id(request_id, f"write/{path}"),
        )
        for path in files
    ]


@dataclass(frozen=True)
class Materialised:
    files: dict[str, str]
    stats: WorkspaceStats
    writes: int
    steps: dict[str, set[str]]  # path -> steps whose writes landed on it


def fold(
    task_id: str, writes: list[FileWritten], *, winners: dict[str, str] | None = None
) -> Materialised:
    """Fold one task's writes (log order) into files.

    `winners` (step -> the request id of its winning attempt) drops a hedged
    step's losing attempt: write ids derive from the request, so the loser's
    writes are known and ignored, and each file appears once.
    """
    space = Workspace("eventual")
    steps: dict[str, set[str]] = {}
    kept = 0
    for i, w in enumerate(writes):
        won = winners.get(w.step_id) if winners is not None else None
        if won is not None and derived_id(won, f"write/{w.path}") != w.write_id:
            continue
        space.apply(
            FileWrite(
                path=w.path,
                content=w.content,
                writer=w.writer,
                base_version=VersionVector.of(w.base_version),
                step_id=w.step_id,
                write_id=w.write_id,
            ),
            float(i),
        )
        kept += 1
        steps.setdefault(w.path, set()).add(w.step_id)
    return Materialised(dict(space.materialise()), space.stats, kept, steps)


async def read_writes(
    bootstrap: str, prefix: str, task_id: str, timeout_s: float = 30.0
) -> list[FileWritten]:
    """Every write of `task_id` on synod.workspace, in log order per partition."""
    from synod.cli_client import partition_counts

    topic = topic_name(WORKSPACE, prefix)
    count = (await partition_counts(bootstrap, [topic]))[topic]
    consumer = AIOKafkaConsumer(
        **client_security(),
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    codec, found = Codec(), []
    try:
        tps = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise SynodError(f"reading {topic} took over {timeout_s:g} s")
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for records in batch.values():
                for r in records:
                    if not (r.key or b"").startswith(f"{task_id}/".encode()):
                        continue
                    env = codec.decode(r.value)
                    if env.task_id == task_id and isinstance(env.body, FileWritten):
                        found.append(env.body)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return found


async def materialise(
    bootstrap: str, prefix: str, task_id: str, winners: dict[str, str] | None = None
) -> Materialised:
    """The task's files as the topic holds them now (any service can run this)."""
    return fold(task_id, await read_writes(bootstrap, prefix, task_id), winners=winners)
