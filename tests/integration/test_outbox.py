"""The planner's outbox on the real broker: a log record and its forwarded copy.

- atomic (one transaction): a writer SIGKILLed between the log write and the
  commit leaves neither record to a `read_committed` reader, though the
  broker holds the log record (a `read_uncommitted` reader sees it); the next
  instance with the same transactional id fences the zombie at once and its
  write has both, each once.
- both modes: the copy is the log record as logged (same id, same clocks)
  and every record lands in the partition its key or partition key says.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from synod.transport.causal import Stamper
from synod.transport.outbox import Outbox, Outgoing
from synod.transport.partitioner import partition_for
from synod.transport.reader import PartitionReader, decode, topic_partitions
from synod.wire import Envelope, Sender, StepRequested

NewTopic = Callable[..., Coroutine[Any, Any, str]]
PLANNER = Sender(role="planner", instance="outbox-test")
ROOT = Path(__file__).resolve().parents[2]

# A writer that logs a step request inside a transaction, says so, and waits to
# be killed before it can commit or forward.
CRASHER = textwrap.dedent(
    """
    import asyncio, sys
    from synod.transport.clients import kafka_producer

    async def main():
        bootstrap, txn_id, topic = sys.argv[1:4]
        producer = kafka_producer(bootstrap, transactional_id=txn_id, acks="all")
        await producer.start()
        await producer.begin_transaction()
        await (await producer.send(topic, b"half-written", key=b"task-1"))
        print("logged", flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


def _request(task_id: str) -> Envelope[StepRequested]:
    body = StepRequested(step_id="s1", role="coder", instructions="write s1")
    return Envelope.new(body, sender=PLANNER, task_id=task_id, message_id=f"{task_id}/s1/0")


async def _read(bootstrap: str, topic: str, committed: bool) -> list[Any]:
    async with PartitionReader(bootstrap, read_committed=committed) as reader:
        await reader.assign(await topic_partitions(bootstrap, [topic]))
        return await reader.read_to_end(30.0)


async def test_a_writer_killed_mid_transaction_leaves_neither_record_and_is_fenced(
    bootstrap: str, new_topic: NewTopic
) -> None:
    log_topic, work_topic = await new_topic(partitions=3), await new_topic(partitions=3)
    txn_id = f"outbox-test-{uuid.uuid4().hex[:8]}"
    crasher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHER,
        bootstrap,
        txn_id,
        log_topic,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert crasher.stdout is not None
        line = await asyncio.wait_for(crasher.stdout.readline(), 60)
        assert line.strip() == b"logged"
    finally:
        crasher.send_signal(signal.SIGKILL)
        await asyncio.wait_for(crasher.wait(), 10)
    # The zombie's record is on the broker, uncommitted.
    assert [r.value for r in await _read(bootstrap, log_topic, committed=False)] == [
        b"half-written"
    ]
    assert await _read(bootstrap, log_topic, committed=True) == []

    outbox = Outbox(bootstrap, txn_id, stamper=Stamper("outbox-test"))
    try:
        # Its start fences the zombie and aborts its transaction: no wait for the timeout.
        request = _request("task-1")
        key = b"task-1/s1"
        await outbox.publish_all(
            [Outgoing(log_topic, request, copies=((work_topic, "avro", key),))]
        )
    finally:
        await outbox.stop()
    logged = decode(await _read(bootstrap, log_topic, committed=True)).received
    forwarded = decode(await _read(bootstrap, work_topic, committed=True)).received
    assert [g.envelope.message_id for g in logged] == [request.message_id]
    assert [g.envelope.message_id for g in forwarded] == [request.message_id]
    # The copy is the record as logged: its clocks, not a second send's.
    assert forwarded[0].envelope.lamport == logged[0].envelope.lamport > 0
    assert forwarded[0].envelope.vclock == logged[0].envelope.vclock
    assert forwarded[0].record.key == key
    assert forwarded[0].record.partition == partition_for(key, 3)
    assert outbox.transactions == 1


@pytest.mark.parametrize("atomic", [True, False], ids=["transaction", "ack"])
async def test_records_then_their_copies_each_once_where_their_keys_say(
    bootstrap: str, new_topic: NewTopic, atomic: bool
) -> None:
    log_topic, work_topic = await new_topic(partitions=5), await new_topic(partitions=5)
    side_topic = await new_topic(partitions=5)
    txn_id = f"outbox-test-{uuid.uuid4().hex[:8]}" if atomic else None
    outbox = Outbox(bootstrap, txn_id, stamper=Stamper("outbox-test"))
    tasks = [f"task-{i}" for i in range(8)]
    try:
        # Concurrent writers, as the planner's handlers of several tasks are.
        await asyncio.gather(
            *(
                outbox.publish_all(
                    [
                        Outgoing(
                            side_topic,
                            _request(t).model_copy(update={"message_id": f"{t}/side"}),
                            key=b"own",
                            partition_key=t.encode(),
                        ),
                        Outgoing(
                            log_topic,
                            _request(t),
                            copies=((work_topic, "avro", f"{t}/s1".encode()),),
                        ),
                    ]
                )
                for t in tasks
            )
        )
    finally:
        await outbox.stop()
    logged = decode(await _read(bootstrap, log_topic, committed=True)).received
    forwarded = decode(await _read(bootstrap, work_topic, committed=True)).received
    side = decode(await _read(bootstrap, side_topic, committed=True)).received
    assert sorted(g.envelope.task_id or "" for g in logged) == sorted(tasks)
    assert sorted(g.envelope.message_id for g in forwarded) == sorted(f"{t}/s1/0" for t in tasks)
    for got in logged:
        assert got.record.partition == partition_for((got.envelope.task_id or "").encode(), 5)
    for got in side:
        assert got.record.partition == partition_for((got.envelope.task_id or "").encode(), 5)
    assert len(side) == len(tasks)
    assert (outbox.transactions >= 1) is atomic
