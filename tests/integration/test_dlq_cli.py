"""`synod dlq` on the real broker, fed by a real consumer's dead-letter sink.

Poison records of every kind and a message whose handler fails go through a
KeyOrderedConsumer with the DeadLetterPublisher every service uses; the CLI
(a subprocess, as a user runs it) lists, shows and replays them. A handler
failure replayed twice lands on its source topic once, and is then handled.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from tests.polling import wait_until_async

from synod.cli.dlq import REPLAYED_FROM_HEADER
from synod.core.deadletters import dead_letter_id
from synod.transport import DeadLetterPublisher, KeyOrderedConsumer, Publisher, Received
from synod.transport.admin import ensure_topics
from synod.transport.dispatcher import RawRecord
from synod.transport.topics import DLQ, STEPS_CODER, topic_name
from synod.wire import Codec, Envelope, Sender, StepCompleted

SENDER = Sender(role="coder", instance="coder-test")
CODEC = Codec()


def _synod(prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synod.cli.main", "dlq", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYNOD_TOPIC_PREFIX": prefix},
    )


async def _cli(prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_synod, prefix, *args)


async def _read_all(bootstrap: str, topic: str, expect: int, timeout_s: float = 30) -> list[Any]:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await reader.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expect:
            assert time.monotonic() < deadline, f"{len(records)} of {expect} records in {topic}"
            for batch in (await reader.getmany(timeout_ms=300)).values():
                records.extend(batch)
        # Whatever else is there (a second copy must not be).
        for batch in (await reader.getmany(timeout_ms=1_000)).values():
            records.extend(batch)
    finally:
        await reader.stop()
    return records


def _step(output: str) -> Envelope[StepCompleted]:
    return Envelope.new(StepCompleted(step_id="s1", output=output), sender=SENDER, task_id="t-1")


async def test_dead_letters_are_listed_shown_and_replayed_once(bootstrap: str) -> None:
    prefix = f"dlq{uuid.uuid4().hex[:6]}."
    await ensure_topics(bootstrap, prefix=prefix, partitions=1)
    source, dlq = topic_name(STEPS_CODER, prefix), topic_name(DLQ, prefix)

    failing = _step("fail")
    unknown_fp = b"\xc3\x01" + b"\x00" * 8 + b"body"
    schema_invalid = json.dumps({"type": "StepCompleted", "task_id": "t-1", "body": {}}).encode()
    oversized = b"{" + b" " * 1_000_100 + b"}"  # over the codec's 1 MB, under the broker's
    async with Publisher(bootstrap) as publisher:
        await publisher.publish(source, _step("ok-1"))
        await publisher.publish_raw(source, b"\x00\xffrandom", key=b"t-1")
        await publisher.publish(source, failing)
        await publisher.publish_raw(source, unknown_fp, key=b"t-2")
        await publisher.publish_raw(source, schema_invalid, key=b"\xff" * 300)
        await publisher.publish_raw(source, oversized, key=b"t-3")
        await publisher.publish(source, _step("ok-2"))

        handled: list[str] = []
        broken = True

        async def handler(msg: Received) -> None:
            if msg.envelope.body.output == "fail" and broken:
                raise RuntimeError("the handler is broken today")
            handled.append(msg.envelope.body.output)

        sink = DeadLetterPublisher(publisher, dlq, SENDER)
        consumer = KeyOrderedConsumer(bootstrap, f"{prefix}g", [source], handler, dead_letter=sink)
        await consumer.start()
        try:
            await wait_until_async(
                lambda: consumer.stats.dead_lettered == 5, timeout_s=30, what="five dead letters"
            )
            assert handled == ["ok-1", "ok-2"]
            # A redelivery after a crash dead-letters the same record again.
            await sink(
                RawRecord(source, 0, 1, b"t-1", b"\x00\xffrandom"),
                "undecodable",
                "again",
                "permanent",
            )

            listed = await _cli(prefix, "list", "--json", "-b", bootstrap)
            assert listed.returncode == 0, listed.stderr
            doc = json.loads(listed.stdout)
            assert doc["stored"] == 6
            letters = {d["offset"]: d for d in doc["dead_letters"]}
            assert {o: d["reason"] for o, d in letters.items()} == {
                1: "undecodable",
                2: "handler_error",
                3: "unknown_schema",
                4: "schema_violation",
                5: "oversized",
            }
            assert letters[1]["copies"] == 2
            assert letters[1]["id"] == dead_letter_id(source, 0, 1)
            assert letters[2]["original_message_id"] == failing.message_id
            assert letters[2]["error_class"] == "transient"
            assert letters[5]["truncated"]
            assert letters[5]["value_size"] == len(oversized)
            assert not any(d["replayed"] for d in doc["dead_letters"])

            only = await _cli(
                prefix, "list", "--json", "--reason", "handler_error", "-b", bootstrap
            )
            assert [d["offset"] for d in json.loads(only.stdout)["dead_letters"]] == [2]
            none = await _cli(prefix, "list", "--json", "--since", "2099-01-01", "-b", bootstrap)
            assert json.loads(none.stdout)["dead_letters"] == []
            recent = await _cli(prefix, "list", "--json", "--since", "10m", "-b", bootstrap)
            assert len(json.loads(recent.stdout)["dead_letters"]) == 5
            table = await _cli(prefix, "list", "-b", bootstrap)
            assert table.returncode == 0, table.stderr
            assert letters[2]["id"] in table.stdout
            assert f"{source}:0@2" in table.stdout

            shown = await _cli(prefix, "show", letters[2]["id"], "--json", "-b", bootstrap)
            assert shown.returncode == 0, shown.stderr
            detail = json.loads(shown.stdout)
            assert base64.b64decode(detail["value_base64"]) == CODEC.encode(failing)
            assert detail["decoded"]["message_id"] == failing.message_id
            assert detail["key_text"] == "t-1"
            assert {h["key"] for h in detail["headers"]} >= {"message-id", "type"}
            poison = await _cli(prefix, "show", letters[4]["id"], "--json", "-b", bootstrap)
            poison_doc = json.loads(poison.stdout)
            assert poison_doc["decoded"] is None
            assert poison_doc["decode_error"].startswith("schema_violation")
            assert poison_doc["key_base64"] == base64.b64encode(b"\xff" * 300).decode()

            missing = await _cli(prefix, "show", "dl-0000000000000000", "-b", bootstrap)
            assert missing.returncode == 1
            assert "`synod dlq list`" in missing.stderr
            bad_since = await _cli(prefix, "list", "--since", "last tuesday", "-b", bootstrap)
            assert bad_since.returncode == 2
            assert "ISO-8601" in bad_since.stderr

            dry = await _cli(prefix, "replay", "--all", "--dry-run", "--json", "-b", bootstrap)
            assert dry.returncode == 0, dry.stderr
            dry_doc = json.loads(dry.stdout)
            assert [d["offset"] for d in dry_doc["would_replay"]] == [2]
            assert dry_doc["replayed"] == []
            assert len(dry_doc["skipped_poison"]) == 3
            assert dry_doc["skipped_truncated"] == [letters[5]["id"]]
            assert "3 skipped as poison" in dry.stderr

            broken = False
            first = await _cli(prefix, "replay", "--id", letters[2]["id"], "-b", bootstrap)
            assert first.returncode == 0, first.stderr
            assert f"replayed {letters[2]['id']} to {source}:0@" in first.stdout
            second = await _cli(prefix, "replay", "--reason", "handler_error", "-b", bootstrap)
            assert second.returncode == 0, second.stderr
            assert f"skipped {letters[2]['id']}: already replayed" in second.stdout
            assert "replayed 0" in second.stderr

            await wait_until_async(
                lambda: "fail" in handled, timeout_s=30, what="the replayed message to be handled"
            )
        finally:
            await consumer.stop()

    records = await _read_all(bootstrap, source, expect=8)
    copies = [r for r in records if (REPLAYED_FROM_HEADER, letters[2]["id"].encode()) in r.headers]
    assert len(copies) == 1
    assert len(records) == 8
    copy = copies[0]
    assert copy.value == CODEC.encode(failing)
    assert copy.key == b"t-1"
    assert CODEC.decode(copy.value).message_id == failing.message_id
    assert handled.count("fail") == 1

    unknown = await _cli(prefix, "replay", "--id", "dl-nope", "--json", "-b", bootstrap)
    assert unknown.returncode == 1
    assert "`synod dlq list`" in json.loads(unknown.stdout)["error"]["message"]
    assert (await _cli(prefix, "replay", "-b", bootstrap)).returncode == 2
    listed_after = json.loads((await _cli(prefix, "list", "--json", "-b", bootstrap)).stdout)
    replayed = {d["offset"]: d["replayed"] for d in listed_after["dead_letters"]}
    assert replayed == {1: False, 2: True, 3: False, 4: False, 5: False}


def test_an_unreachable_broker_is_a_clear_error() -> None:
    down = _synod("", "list", "-b", "127.0.0.1:1", "--json")
    assert down.returncode == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in json.loads(down.stdout)["error"]["message"]
