"""`synod check` on the real broker: a log doctored with a forged decision (written with
the real codec by a real producer) fails naming the record; the honest task passes;
bad usage exits 2."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

from tests.logs import honest

from synod.transport import Publisher
from synod.transport.admin import ensure_topics
from synod.wire.messages import Decision


async def synod(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synod.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SYNOD_LOG_LEVEL": "WARNING"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_passes_an_honest_task_and_names_a_forged_decision(bootstrap: str) -> None:
    prefix = f"chk{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, prefix=prefix, partitions=1)
    good, _ = honest("t-good")
    bad, marks = honest("t-bad")
    forged = Decision(decision_id="x/decision", proposal_id="p1", ballot=2, outcome="c1", quorum=2)
    env = bad.send("consensus-0", "synod.task-events", forged, because=marks["ask"])
    async with Publisher(bootstrap) as publisher:
        for record in [*good.records, *bad.records]:
            await publisher.publish(f"{prefix}{record.topic}", record.envelope)

    common = ["--bootstrap", bootstrap, "--prefix", prefix]
    code, out, err = await synod("check", *common, "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["ok"] is False
    assert doc["tasks"] == 2
    (violation,) = doc["violations"]
    assert violation["kind"] == "decision_without_quorum"
    assert violation["task_id"] == "t-bad"
    assert violation["message_id"] == env.message_id
    assert violation["where"].startswith("synod.task-events[0]@")

    code, out, err = await synod("check", *common, "--task", "t-good")
    assert code == 0, out + err
    assert "ok: no violation" in out

    code, _, err = await synod("check", *common, "--since", "last tuesday")
    assert code == 2
    assert "ISO 8601" in err
