"""Authorship: signatures per principal, and who may author what (synod.transport.authorship)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synod.errors import ConfigError
from synod.transport import authorship as a
from synod.transport.authorship import Authorship, Keyring, Signer, load_private_key, verdict
from synod.wire import Codec, Decision, Envelope, Sender, TaskCompleted, TaskSubmitted, Vote
from synod.wire.examples import example_envelopes

PRINCIPALS = {
    "planner-0": "planner",
    "consensus-0": "consensus",
    "researcher-0": "researcher",
    "reviewer-0": "reviewer",
    "reviewer-1": "reviewer",
    "supervisor-0": "supervisor",
    "coder-0": "coder",
    "gateway-0": "gateway",
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Keyring, dict[str, Signer]]:
    directory = tmp_path_factory.mktemp("keys")
    ring = a.write_keys(directory, PRINCIPALS)
    assert oct((directory / "planner-0.key").stat().st_mode & 0o777) == "0o600"
    signers = {p: Signer(p, load_private_key(directory / f"{p}.key")) for p in PRINCIPALS}
    return Keyring.load(ring), signers


def decision(sender: Sender) -> Envelope[Any]:
    body = Decision(
        decision_id="d1", proposal_id="p1", ballot=1, outcome="c1", votes_for=2, quorum=2
    )
    return Envelope.new(body, sender=sender, task_id="t1")


def vote(voter: str, sender: Sender) -> Envelope[Any]:
    body = Vote(proposal_id="p1", voter=voter, choice="c1")
    return Envelope.new(body, sender=sender, task_id="t1")


def test_every_message_type_keeps_its_signature_through_both_codecs(
    keys: tuple[Keyring, dict[str, Signer]],
) -> None:
    keyring, signers = keys
    codec = Codec()
    checked = 0
    for example in example_envelopes():
        role = example.sender.role
        principal = next((p for p, r in PRINCIPALS.items() if r == role), None)
        if principal is None or not a.may_author(role, example.type):
            continue
        if example.type == "Vote":
            example = example.model_copy(
                update={"body": example.body.model_copy(update={"voter": principal})}
            )
        signed = signers[principal].sign(example)
        for content_type in ("avro", "json"):
            back = codec.decode(codec.encode(signed, content_type))
            assert verdict(keyring, back) is None, (example.type, content_type)
        checked += 1
    assert checked >= 10


def test_a_forged_decision_is_refused_however_it_is_dressed(
    keys: tuple[Keyring, dict[str, Signer]],
) -> None:
    keyring, signers = keys
    consensus = Sender(role="consensus", instance="consensus-0")
    researcher = Sender(role="researcher", instance="researcher-0")
    assert verdict(keyring, signers["consensus-0"].sign(decision(consensus))) is None
    # Unsigned, with the consensus as its claimed sender.
    assert verdict(keyring, decision(consensus)) == "unsigned"
    # Signed by the researcher, claiming to be the consensus.
    assert verdict(keyring, signers["researcher-0"].sign(decision(consensus))) == "sender_mismatch"
    # Signed by the researcher as itself: a researcher may not author a Decision.
    assert verdict(keyring, signers["researcher-0"].sign(decision(researcher))) == "not_author"
    # The researcher names the consensus as signer but signs with its own key.
    forged = decision(consensus).model_copy(update={"signer": "consensus-0"})
    stolen_name = signers["researcher-0"].key.sign(a.signed_bytes(forged))
    import base64

    forged = forged.model_copy(update={"signature": base64.b64encode(stolen_name).decode()})
    assert verdict(keyring, forged) == "bad_signature"
    # A real signature over another body (the outcome changed after signing).
    good = signers["consensus-0"].sign(decision(consensus))
    tampered = good.model_copy(update={"body": good.body.model_copy(update={"outcome": "c2"})})
    assert verdict(keyring, tampered) == "bad_signature"
    # An unknown principal.
    stranger = good.model_copy(update={"signer": "consensus-9"})
    assert verdict(keyring, stranger) == "unknown_signer"


def test_a_vote_counts_only_under_its_jurors_own_name(
    keys: tuple[Keyring, dict[str, Signer]],
) -> None:
    keyring, signers = keys
    juror = Sender(role="reviewer", instance="reviewer-0")
    assert verdict(keyring, signers["reviewer-0"].sign(vote("reviewer-0", juror))) is None
    assert (
        verdict(keyring, signers["reviewer-0"].sign(vote("reviewer-1", juror))) == "voter_mismatch"
    )
    planner = Sender(role="planner", instance="planner-0")
    assert verdict(keyring, signers["planner-0"].sign(vote("planner-0", planner))) == "not_author"


def test_tasks_from_any_client_need_no_signature_but_outcomes_do(
    keys: tuple[Keyring, dict[str, Signer]],
) -> None:
    keyring, signers = keys
    client = Sender(role="client", instance="cli")
    assert (
        verdict(keyring, Envelope.new(TaskSubmitted(goal="g"), sender=client, task_id="t")) is None
    )
    planner = Sender(role="planner", instance="planner-0")
    done = Envelope.new(TaskCompleted(result="a"), sender=planner, task_id="t")
    assert verdict(keyring, done) == "unsigned"
    assert verdict(keyring, signers["planner-0"].sign(done)) is None
    worker = Sender(role="coder", instance="coder-0")
    claimed = Envelope.new(TaskCompleted(result="a"), sender=worker, task_id="t")
    assert verdict(keyring, signers["coder-0"].sign(claimed)) == "not_author"


def test_a_copy_sent_on_keeps_its_authors_signature(
    keys: tuple[Keyring, dict[str, Signer]],
) -> None:
    keyring, signers = keys
    good = signers["consensus-0"].sign(decision(Sender(role="consensus", instance="consensus-0")))
    assert signers["planner-0"].sign(good) == good
    assert verdict(keyring, good) is None


def test_rejections_are_counted_and_unconfigured_means_unchecked(
    keys: tuple[Keyring, dict[str, Signer]],
) -> None:
    keyring, _ = keys
    forged = decision(Sender(role="consensus", instance="consensus-0"))
    labels = {
        "role": "planner",
        "instance": "p",
        "topic": "synod.task-events",
        "outcome": "unsigned",
    }
    before = a.REJECTED.labels(**labels)._value.get()
    assert not Authorship(None, keyring).check("synod.task-events", forged, "planner", "p")
    assert a.REJECTED.labels(**labels)._value.get() == before + 1
    assert not Authorship(None, keyring).check(
        "synod.task-events", forged, "planner", "p", report=False
    )
    assert a.REJECTED.labels(**labels)._value.get() == before + 1
    assert Authorship(None, None).check("synod.task-events", forged, "planner", "p")


def test_bad_key_files_fail_with_the_variable_name(tmp_path: Path) -> None:
    (tmp_path / "ring.json").write_text('{"principals": {"x": {"role": "planner"}}}')
    with pytest.raises(ConfigError, match="SYNOD_KEYRING_FILE"):
        Keyring.load(tmp_path / "ring.json")
    (tmp_path / "k.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="SYNOD_SIGNING_KEY_FILE"):
        load_private_key(tmp_path / "k.pem")


def test_the_rights_table_keeps_workers_off_the_deciding_topics() -> None:
    for role in ("researcher", "coder"):
        written = {x.name for x in a.acls_for(role) if "Write" in x.operations}
        assert not written & {"synod.votes", "synod.results", "synod.decisions", "synod.tasks"}
    assert {r for r in a.RIGHTS if a.may_author(r, "Decision")} == {"consensus"}
    assert {r for r in a.RIGHTS if a.may_author(r, "Vote")} == {"reviewer"}
    assert {r for r in a.RIGHTS if a.may_author(r, "TaskCompleted")} == {"planner"}


def test_a_role_does_not_sign_another_roles_message_it_sends_on(
    keys: tuple[Keyring, dict[str, Signer]],
) -> None:
    keyring, signers = keys
    planner = Signer("planner-0", signers["planner-0"].key, "planner")
    task = Envelope.new(
        TaskSubmitted(goal="g"), sender=Sender(role="gateway", instance="gateway-0"), task_id="t"
    )
    assert planner.sign(task) == task  # the client's task is copied as it came
    assert verdict(keyring, task) is None
    own = Envelope.new(
        TaskSubmitted(goal="sub"), sender=Sender(role="planner", instance="planner-0"), task_id="u"
    )
    assert planner.sign(own).signer == "planner-0"
