"""The gateway's view with a keyring: a forged record is counted, not shown as real,
by the service host's own verdict (synod.transport.authorship)."""

from __future__ import annotations

from pathlib import Path

from synod.roles.gateway.view import TaskFeed, ViewConsumer
from synod.transport.authorship import Authorship, Keyring, Signer, load_private_key, write_keys
from synod.wire import Codec, Envelope, Sender, TaskCompleted, Vote


async def test_forged_records_are_left_out_of_the_view_and_counted(tmp_path: Path) -> None:
    ring = write_keys(
        tmp_path, {"planner-0": "planner", "researcher-0": "researcher", "reviewer-0": "reviewer"}
    )
    signer = {
        p: Signer(p, load_private_key(tmp_path / f"{p}.key"))
        for p in ("planner-0", "researcher-0", "reviewer-0")
    }
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
    planner = Sender(role="planner", instance="planner-0")
    done = TaskCompleted(result="real")
    # A researcher's key on a TaskCompleted that claims the planner sent it.
    forged = signer["researcher-0"].sign(
        Envelope.new(TaskCompleted(result="forged"), sender=planner, task_id="t-forged")
    )
    real = signer["planner-0"].sign(Envelope.new(done, sender=planner, task_id="t-real"))
    unsigned = Envelope.new(TaskCompleted(result="unsigned"), sender=planner, task_id="t-unsigned")
    for envelope in (forged, real, unsigned):
        view._ingest(codec.encode(envelope), 1, "synod.task-events")
    assert feed.index.get("t-real") is not None
    assert feed.index.get("t-forged") is None
    assert feed.index.get("t-unsigned") is None
    assert view.stats.forged == 2
    assert view.details()["view_forged"] == 2
    # A vote under another juror's name is not shown in the ballots either.
    juror = Sender(role="reviewer", instance="reviewer-0")
    vote = Vote(proposal_id="p", choice="c1", voter="reviewer-1")
    view._vote(
        codec.encode(signer["reviewer-0"].sign(Envelope.new(vote, sender=juror, task_id="t-real")))
    )
    assert feed.votes("t-real") == []
    assert view.stats.forged == 3
