"""synod.workspace on the real broker: a key per record, one partition (one order) per task."""

from __future__ import annotations

import uuid
from typing import Any

from synod.core.workspace import fold, writes_for, written_version
from synod.transport import Publisher
from synod.transport.admin import ensure_topics
from synod.transport.topics import WORKSPACE, topic_name
from synod.transport.workspace import publish_record, read_records
from synod.wire import Envelope, Sender
from synod.wire.messages import LeaseGranted

CODER = Sender(role="coder", instance="coder-0")


def _write(task: str, step: str, request: str, path: str, base: dict[str, int]) -> Envelope[Any]:
    out = f'{{"files": [{{"path": "{path}", "content": "{request}"}}]}}'
    (w,) = writes_for(task, step, request, "coder-0", [path], step, out, base_versions={path: base})
    return Envelope.new(w, sender=CODER, task_id=task, message_id=w.write_id)


async def test_a_tasks_records_share_its_partition_in_order_and_none_is_dropped(
    bootstrap: str,
) -> None:
    prefix = f"wst{uuid.uuid4().hex[:6]}."
    await ensure_topics(bootstrap, (WORKSPACE,), prefix=prefix)
    topic = topic_name(WORKSPACE, prefix)
    assert WORKSPACE.partitions > 1  # otherwise one partition per task would be trivially true
    task, other = f"t-{uuid.uuid4().hex[:6]}", f"u-{uuid.uuid4().hex[:6]}"
    v1 = written_version({}, "r1", "a.py").as_dict()
    grant = LeaseGranted(path="a.py", step_id="s1", token=1)
    sent = [
        Envelope.new(grant, sender=CODER, task_id=task, message_id="g1"),
        _write(task, "s1", "r1", "a.py", {}),
        _write(other, "s1", "r1", "a.py", {}),  # another task on the same topic
        _write(task, "s2", "r2", "a.py", v1),  # a rewrite based on s1's version
        _write(task, "s9", "r9", "a.py", {}),  # concurrent with both: same path
        _write(task, "s3", "r3", "b.py", {}),
    ]
    sent.append(sent[3])  # a redelivery: same key, same record
    async with Publisher(bootstrap, client_id="wst") as publisher:
        for envelope in sent:
            await publish_record(publisher, topic, envelope)

    # Different keys, one partition: read_records reads only the partition the
    # task id hashes to, so a record put anywhere else would be missing here.
    records = await read_records(bootstrap, prefix, task)
    mine = [e.body for e in sent if e.task_id == task]
    assert records == mine  # in publish order, the other task's record left out

    space = fold(task, records, mode="eventual")
    assert space.stats.duplicates == 1
    assert space.files == {"b.py": "r3"}
    assert [s.content for s in space.conflicted["a.py"]] == ["r2", "r9"]
    assert space.lost == ()
