"""`synod status` / `watch` with a keyring (cli.env of `synod up --secure`): what no
service would act on is not shown as the task's (synod.transport.authorship.verdict)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synod.client import TaskReader
from synod.transport.authorship import Signer, load_private_key, write_keys
from synod.wire import Codec, Envelope, Sender, TaskCompleted, TaskSubmitted

PLANNER = Sender(role="planner", instance="planner-0")


async def test_a_forged_outcome_is_not_the_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = write_keys(tmp_path, {"planner-0": "planner", "coder-0": "coder"})
    monkeypatch.setenv("SYNOD_KEYRING_FILE", str(ring))
    planner = Signer("planner-0", load_private_key(tmp_path / "planner-0.key"))
    coder = Signer("coder-0", load_private_key(tmp_path / "coder-0.key"))
    reader = TaskReader("127.0.0.1:1", task_id="t-1")  # never started: records handed in
    codec = Codec()
    client = Sender(role="gateway", instance="gateway-0")
    submitted = Envelope.new(TaskSubmitted(goal="g"), sender=client, task_id="t-1")
    forged = coder.sign(Envelope.new(TaskCompleted(result="FORGED"), sender=PLANNER, task_id="t-1"))
    real = planner.sign(Envelope.new(TaskCompleted(result="real"), sender=PLANNER, task_id="t-1"))
    topic = reader.task_events
    assert reader._apply(codec.encode(submitted), 0, topic) is not None
    assert reader._apply(codec.encode(forged), 1, topic) is None
    assert reader.forged == 1
    view = reader._apply(codec.encode(real), 2, topic)
    assert view is not None
    assert view.to_json()["result"] == "real"


async def test_without_a_keyring_nothing_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNOD_KEYRING_FILE", raising=False)
    reader = TaskReader("127.0.0.1:1", task_id="t-1")
    unsigned = Envelope.new(TaskCompleted(result="r"), sender=PLANNER, task_id="t-1")
    assert reader._apply(Codec().encode(unsigned), 0, reader.task_events) is not None
    assert reader.forged == 0
