"""The gateway's view with a keyring: a forged record is counted and shown as forged,
never as part of the task, by the service host's own verdict (synod.transport.authorship)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from synod.roles.gateway.app import create_app
from synod.roles.gateway.operations import Operations
from synod.roles.gateway.view import TaskFeed, ViewConsumer
from synod.transport.authorship import Authorship, Keyring, Signer, load_private_key, write_keys
from synod.wire import Codec, Envelope, Sender, TaskCompleted, TaskSubmitted, Vote

PRINCIPALS = {"planner-0": "planner", "researcher-0": "researcher", "reviewer-0": "reviewer"}
PLANNER = Sender(role="planner", instance="planner-0")


class NoPublisher:
    async def publish(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing is published here")


async def test_forged_records_are_shown_as_forged_not_as_the_task(tmp_path: Path) -> None:
    ring = write_keys(tmp_path, PRINCIPALS)
    signer = {p: Signer(p, load_private_key(tmp_path / f"{p}.key")) for p in PRINCIPALS}
    feed = TaskFeed()
    view = ViewConsumer(
        "127.0.0.1:1",  # never started: records are handed in as the consumer would
        feed,
        task_events_topic="synod.task-events",
        results_topic="synod.results",
        votes_topic="synod.votes",
        authorship=Authorship(None, Keyring.load(ring)),
        causal_timeout_s=None,
    )
    codec = Codec()
    client = Sender(role="gateway", instance="gateway-0")
    submitted = Envelope.new(TaskSubmitted(goal="g"), sender=client, task_id="t-1")
    # A researcher's key on a TaskCompleted that claims the planner sent it, and
    # one with no signature at all.
    forged = signer["researcher-0"].sign(
        Envelope.new(TaskCompleted(result="forged"), sender=PLANNER, task_id="t-1")
    )
    unsigned = Envelope.new(TaskCompleted(result="unsigned"), sender=PLANNER, task_id="t-1")
    for envelope in (submitted, forged, unsigned):
        view._ingest(codec.encode(envelope), 1, "synod.task-events")
    task = feed.index.get("t-1")
    assert task is not None
    assert not task.terminal  # neither completion took
    assert view.stats.forged == 2
    assert view.details()["view_forged"] == 2
    reasons = {f["message_id"]: f["reason"] for f in feed.forged("t-1")}
    assert reasons == {forged.message_id: "sender_mismatch", unsigned.message_id: "unsigned"}
    # The real completion still takes.
    real = signer["planner-0"].sign(
        Envelope.new(TaskCompleted(result="real"), sender=PLANNER, task_id="t-1")
    )
    view._ingest(codec.encode(real), 2, "synod.task-events")
    assert task.terminal
    # A vote under another juror's name is not in the ballots; it is listed as forged.
    juror = Sender(role="reviewer", instance="reviewer-0")
    vote = Vote(proposal_id="p", choice="c1", voter="reviewer-1")
    view._vote(
        codec.encode(signer["reviewer-0"].sign(Envelope.new(vote, sender=juror, task_id="t-1")))
    )
    assert feed.votes("t-1") == []
    assert [f["reason"] for f in feed.forged("t-1")][-1] == "voter_mismatch"

    # What a caller and the console are shown.
    app = create_app(NoPublisher(), feed, operations=Operations())  # type: ignore[arg-type]
    http: TestClient[Any, Any] = TestClient(TestServer(app))
    await http.start_server()
    try:
        status = await (await http.get("/v1/tasks/t-1")).json()
        detail = await (await http.get("/v1/tasks/t-1/detail")).json()
    finally:
        await http.close()
    assert status["result"] == "real"
    assert [f["reason"] for f in status["forged"]] == [
        "sender_mismatch",
        "unsigned",
        "voter_mismatch",
    ]
    assert detail["forged"] == status["forged"]
    assert "forged" not in str(detail["timeline"])
