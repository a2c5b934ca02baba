"""A consumer process for the crash tests: `python transport_worker.py ...`.

Handles records of a topic with KeyOrderedConsumer and a random latency; each
handled record is appended to a log file (one line, flushed) and produces one
effect: an output envelope whose message id is derived from the input's, so
consumers downstream can drop a repeated effect by id.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import uuid

from synod.transport import (
    ConsumerConfig,
    KeyOrderedConsumer,
    Publisher,
    RawRecord,
    Received,
    serve,
)
from synod.wire import Envelope, Sender, StepCompleted


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out-topic", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--max-latency-ms", type=float, default=50)
    parser.add_argument("--slow-every", type=int, default=0, help="every n-th record takes 5 s")
    args = parser.parse_args()
    rng = random.Random(os.getpid())
    # Line-buffered, so every handled record is on disk before a SIGKILL can land.
    log = open(args.log, "a", buffering=1)  # noqa: SIM115, ASYNC230
    sender = Sender(role="coder", instance=f"worker-{os.getpid()}")
    publisher = Publisher(args.bootstrap)
    await publisher.start()

    async def handler(msg: Received) -> None:
        r = msg.record
        seq = int(msg.envelope.body.output)
        slow = args.slow_every and seq % args.slow_every == 0
        await asyncio.sleep(5.0 if slow else rng.random() * args.max_latency_ms / 1000)
        effect = Envelope.new(
            StepCompleted(step_id="effect", output=msg.envelope.message_id),
            sender=sender,
            task_id=msg.envelope.task_id,
            message_id=uuid.uuid5(uuid.NAMESPACE_OID, msg.envelope.message_id).hex,
        )
        await publisher.publish(args.out_topic, effect)
        log.write(f"{os.getpid()} {r.partition} {r.offset} {msg.envelope.task_id} {seq}\n")

    async def dead_letter(record: RawRecord, reason: str, message: str, cls: str) -> None:
        log.write(f"{os.getpid()} dead {record.partition} {record.offset} {reason}\n")

    consumer = KeyOrderedConsumer(
        args.bootstrap,
        args.group,
        [args.topic],
        handler,
        dead_letter=dead_letter,
        config=ConsumerConfig(
            concurrency=args.concurrency, session_timeout_ms=6_000, heartbeat_interval_ms=500
        ),
    )
    print("started", flush=True)
    await serve(consumer)
    await publisher.stop()
    log.write(f"{os.getpid()} stopped\n")


if __name__ == "__main__":
    asyncio.run(main())
