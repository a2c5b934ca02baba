"""Who may write what, and who wrote a message: the rights table and Ed25519 signatures.

`RIGHTS` is the one table of what each role may read and write on the broker
and which message types it may author. From it come the local broker's ACLs
(`synod up --secure`, `synod.dev.localkafka`) and the chart's Strimzi
KafkaUsers (`synod.dev.chartdata` writes charts/synod/files/acls.json), so the
two cannot drift.

Broker ACLs stop a role writing a topic it has no business on (a researcher
cannot write synod.votes or synod.results). They cannot stop the attack that
matters on a shared topic: researchers, coders, reviewers, the planner and
consensus all write synod.task-events, which carries `Decision` and
`TaskCompleted`, and `sender` / `Vote.voter` are whatever a producer writes.
So every service signs what it sends with its principal's Ed25519 key
(`Signer`, in the publisher), and every consumer that acts checks the
signature against the keyring of public keys before the message reaches role
logic (`Authorship.check`: the service host and the consensus fold). A
message is acted on only when its signer's role may author its type, its
`sender.role` is that role, and a vote's `voter` is the signer itself. A
rejected message is skipped, logged and counted in
`synod_authorship_rejected_total`. ADR 0014 has the reasoning and the limits.

Without a keyring (`SYNOD_KEYRING_FILE` unset) nothing is checked: a dev run.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from synod.errors import ConfigError
from synod.transport import topics as t
from synod.wire import Envelope

log = logging.getLogger("synod.authorship")

Operation = Literal["Read", "Write", "Describe"]
ResourceType = Literal["topic", "group", "transactionalId"]

REJECTED = Counter(
    "synod_authorship_rejected_total",
    "Messages not acted on: unsigned, badly signed, or from a role that may not author them",
    ["role", "instance", "topic", "outcome"],
)


@dataclass(frozen=True)
class Access:
    """One ACL: a topic or group, by literal name or by prefix, and what may be done."""

    resource: ResourceType
    name: str  # a catalogue name (the install's prefix goes in front), or a prefix
    operations: tuple[Operation, ...]
    prefix: bool = False

    def named(self, topic_prefix: str) -> str:
        return f"{topic_prefix}{self.name}"


def _read(*specs: t.TopicSpec | str, prefix: bool = False) -> tuple[Access, ...]:
    return tuple(
        Access("topic", s.name if isinstance(s, t.TopicSpec) else s, ("Read", "Describe"), prefix)
        for s in specs
    )


def _write(*specs: t.TopicSpec | str, prefix: bool = False) -> tuple[Access, ...]:
    return tuple(
        Access("topic", s.name if isinstance(s, t.TopicSpec) else s, ("Write", "Describe"), prefix)
        for s in specs
    )


def _group(name: str, prefix: bool = False) -> Access:
    return Access("group", name, ("Read", "Describe"), prefix)


def _transactions(name: str) -> Access:
    """Open, commit and abort transactions under ids starting with `name` (ADR 0012)."""
    return Access("transactionalId", name, ("Write", "Describe"), prefix=True)


@dataclass(frozen=True)
class RoleRights:
    """What one role may do: ACLs on the broker, and the message types it may author."""

    reads: tuple[Access, ...] = ()
    writes: tuple[Access, ...] = ()
    groups: tuple[Access, ...] = ()
    authors: frozenset[str] = frozenset()
    service: bool = True  # a service: it heartbeats and dead-letters like every role

    @property
    def acls(self) -> tuple[Access, ...]:
        return self.reads + self.writes + self.groups


# Every role reports liveness and dead letters.
_EVERY_ROLE_WRITES = _write(t.HEARTBEATS, t.DLQ)
_EVERY_ROLE_AUTHORS = frozenset({"Heartbeat", "DeadLetter"})
_WORKER_AUTHORS = frozenset(
    {
        "StepCompleted",
        "StepFailed",
        "StepRetrying",
        "FileWritten",
        "FactPublished",
        "UsageReported",  # a cancelled call's worst case (docs/adr/0011)
    }
)

RIGHTS: Mapping[str, RoleRights] = {
    "gateway": RoleRights(
        reads=_read(
            t.TASK_EVENTS,
            t.RESULTS,
            t.VOTES,
            t.HEARTBEATS,
            t.SUPERVISOR,
            t.DLQ,
            t.DLQ_REPLAYS,
            t.WORKSPACE,
            t.SNAPSHOTS,
        ),
        writes=_write(t.TASKS, t.DLQ_REPLAYS, t.SNAPSHOTS, t.ESCALATIONS),
        # People's answers to escalations and cancels, named by their token.
        authors=frozenset({"TaskSubmitted", "EscalationAnswered", "TaskCancelRequested"}),
    ),
    "planner": RoleRights(
        reads=_read(t.TASKS, t.TASK_EVENTS, t.SUPERVISOR, t.WORKSPACE, t.SNAPSHOTS, t.ESCALATIONS),
        writes=_write(
            t.TASK_EVENTS,
            t.VOTES,
            t.RESULTS,
            t.WORKSPACE,
            t.SNAPSHOTS,
            t.STEPS_CANCEL,
            t.ESCALATIONS,
        )
        + _write("synod.steps.", prefix=True),
        # SYNOD_PLANNER_OUTBOX=transaction: one transactional id per instance,
        # `<prefix>synod.planner.<instance>` (synod.roles.planner.service).
        groups=(_group("synod.planner"), _transactions("synod.planner.")),
        authors=frozenset(
            {
                "TaskSubmitted",  # a project's sub-tasks
                "PlanProposed",
                "StepRequested",
                "StepCancelled",
                "StepClaimed",
                "LeaseGranted",
                "FileWritten",
                "VoteRequested",
                "TaskCompleted",
                "TaskFailed",
                "EscalationRaised",
                "UsageReported",  # its own plan calls
            }
        ),
    ),
    "researcher": RoleRights(
        reads=_read(t.STEPS_RESEARCHER, t.STEPS_CANCEL, t.WORKSPACE)
        + _read("synod.retry.researcher.", prefix=True),
        writes=_write(t.TASK_EVENTS, t.WORKSPACE) + _write("synod.retry.researcher.", prefix=True),
        groups=(_group("synod.researcher", prefix=True),),
        authors=_WORKER_AUTHORS,
    ),
    "coder": RoleRights(
        reads=_read(t.STEPS_CODER, t.STEPS_CANCEL, t.WORKSPACE)
        + _read("synod.retry.coder.", prefix=True),
        writes=_write(t.TASK_EVENTS, t.WORKSPACE) + _write("synod.retry.coder.", prefix=True),
        groups=(_group("synod.coder", prefix=True),),
        authors=_WORKER_AUTHORS,
    ),
    "reviewer": RoleRights(
        reads=_read(t.VOTES, t.WORKSPACE),
        writes=_write(t.VOTES, t.TASK_EVENTS),
        groups=(_group("synod.reviewer.", prefix=True),),
        authors=frozenset({"Vote", "AnswerVerified", "UsageReported"}),
    ),
    "consensus": RoleRights(
        # synod.heartbeats: the supervisor's Reachability reports (docs/cap.md).
        reads=_read(t.VOTES, t.SNAPSHOTS, t.HEARTBEATS),
        writes=_write(t.VOTES, t.TASK_EVENTS, t.DECISIONS, t.SNAPSHOTS),
        groups=(_group("synod.consensus"), _group("synod.consensus.reachability.", prefix=True)),
        authors=frozenset({"Decision", "BallotDeadline", "VoteRequested", "Reconciled"}),
    ),
    "supervisor": RoleRights(
        reads=_read(t.HEARTBEATS, t.TASK_EVENTS, t.VOTES, t.SUPERVISOR),
        writes=_write(t.TASK_EVENTS, t.SUPERVISOR),
        groups=(_group("synod.supervisor", prefix=True),),
        authors=frozenset(
            {"StepReassigned", "QuarantineNotice", "EscalationRequested", "Reachability"}
        ),
    ),
    # The `synod` CLI (status, watch, ps, check, submit): reads every topic
    # without a group and writes only the edge topic a task enters by.
    "cli": RoleRights(
        reads=_read("synod.", prefix=True),
        writes=_write(t.TASKS),
        service=False,
    ),
}

# Any Kafka client may submit a task (the edge topic, guarded by the broker's
# ACL on synod.tasks alone): a TaskSubmitted needs no signature.
OPEN_TYPES = frozenset({"TaskSubmitted"})


def acls_for(role: str) -> tuple[Access, ...]:
    """Every ACL of one role, the ones all services share included."""
    rights = RIGHTS[role]
    return (_EVERY_ROLE_WRITES if rights.service else ()) + rights.acls


def may_author(role: str, message_type: str) -> bool:
    rights = RIGHTS.get(role)
    if message_type in _EVERY_ROLE_AUTHORS:
        return rights is not None and rights.service
    return rights is not None and message_type in rights.authors


# ---------------------------------------------------------------- signatures


def signed_bytes(envelope: Envelope[Any]) -> bytes:
    """What a signature covers: identity, routing and the body, in a canonical JSON form.

    Clocks, causes and trace context are left out: the publisher stamps them
    and a copy sent on keeps them, and none of them says who wrote the body.
    """
    doc = {
        "message_id": envelope.message_id,
        "task_id": envelope.task_id,
        "type": envelope.type,
        "sender": envelope.sender.model_dump(mode="json"),
        "signer": envelope.signer,
        "body": envelope.body.model_dump(mode="json"),
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return b"synod-envelope-v1\n" + hashlib.sha256(canonical.encode()).digest()


@dataclass(frozen=True)
class Signer:
    """A principal's private key; signs what its process sends."""

    principal: str
    key: Ed25519PrivateKey = field(repr=False)
    role: str = ""  # "": any sender; else only what this role authors is signed

    def sign(self, envelope: Envelope[Any]) -> Envelope[Any]:
        if envelope.signature:
            return envelope  # a copy sent on keeps its author's signature
        if self.role and envelope.sender.role != self.role:
            return envelope  # another's message sent on (a client's task): not ours to sign
        named = envelope.model_copy(update={"signer": self.principal})
        signature = self.key.sign(signed_bytes(named))
        return named.model_copy(update={"signature": base64.b64encode(signature).decode()})


@dataclass(frozen=True)
class KeyringEntry:
    role: str
    key: Ed25519PublicKey


class Keyring:
    """Public keys by principal, with each principal's role."""

    def __init__(self, entries: Mapping[str, KeyringEntry]) -> None:
        self.entries = dict(entries)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            doc = json.loads(path.read_text())
            entries = {
                name: KeyringEntry(
                    role=str(e["role"]),
                    key=Ed25519PublicKey.from_public_bytes(base64.b64decode(e["public_key"])),
                )
                for name, e in doc["principals"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ConfigError(
                f"SYNOD_KEYRING_FILE={path}: not a keyring "
                '({"principals": {name: {"role", "public_key"}}}): ' + str(exc)
            ) from exc
        unknown = {e.role for e in entries.values()} - set(RIGHTS)
        if unknown:
            raise ConfigError(f"SYNOD_KEYRING_FILE={path}: unknown roles {sorted(unknown)}")
        return cls(entries)


def verdict(keyring: Keyring, envelope: Envelope[Any]) -> str | None:
    """None when the message may be acted on, else why not (a metric's outcome)."""
    if envelope.type in OPEN_TYPES and not envelope.signature:
        return None
    if not envelope.signature or not envelope.signer:
        return "unsigned"
    entry = keyring.entries.get(envelope.signer)
    if entry is None:
        return "unknown_signer"
    try:
        entry.key.verify(
            base64.b64decode(envelope.signature, validate=True), signed_bytes(envelope)
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return "bad_signature"
    if envelope.sender.role != entry.role:
        return "sender_mismatch"
    if not may_author(entry.role, envelope.type):
        return "not_author"
    if envelope.type == "Vote" and getattr(envelope.body, "voter", None) != envelope.signer:
        return "voter_mismatch"
    return None


class AuthorshipSettings(BaseSettings):
    """SYNOD_KEYRING_FILE, SYNOD_SIGNING_KEY_FILE, SYNOD_PRINCIPAL."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_", extra="ignore")

    keyring_file: str = Field(default="", description="public keys of every principal (JSON)")
    signing_key_file: str = Field(
        default="", description="this process's Ed25519 private key (PEM, PKCS#8)"
    )
    principal: str = Field(
        default="", description="the signing key's principal (default: the instance)"
    )


class Authorship:
    """One process's signer and checker."""

    def __init__(self, signer: Signer | None, keyring: Keyring | None) -> None:
        self.signer = signer
        self.keyring = keyring

    @property
    def enforced(self) -> bool:
        return self.keyring is not None

    @classmethod
    def from_environment(cls, instance: str) -> Authorship:
        s = AuthorshipSettings()
        keyring = Keyring.load(Path(s.keyring_file)) if s.keyring_file else None
        signer = None
        if s.signing_key_file:
            principal = s.principal or instance
            entry = keyring.entries.get(principal) if keyring is not None else None
            if keyring is not None and entry is None:
                raise ConfigError(
                    f"SYNOD_PRINCIPAL={principal} is not in SYNOD_KEYRING_FILE={s.keyring_file}"
                )
            key = load_private_key(Path(s.signing_key_file))
            signer = Signer(principal, key, entry.role if entry is not None else "")
        return cls(signer, keyring)

    def check(
        self, topic: str, envelope: Envelope[Any], role: str, instance: str, *, report: bool = True
    ) -> bool:
        """True: act on it. False: skip it (logged and counted unless `report` is off:
        a fold replaying what it already reported)."""
        return self.rejection(topic, envelope, role, instance, report=report) is None

    def rejection(
        self, topic: str, envelope: Envelope[Any], role: str, instance: str, *, report: bool = True
    ) -> str | None:
        """`check`, saying why not: None to act on it, else the metric's outcome."""
        if self.keyring is None:
            return None
        reason = verdict(self.keyring, envelope)
        if reason is None:
            return None
        if not report:
            return reason
        REJECTED.labels(role=role, instance=instance, topic=topic, outcome=reason).inc()
        log.warning(
            "authorship_rejected: a message not acted on",
            extra={
                "task_id": envelope.task_id,
                "message_id": envelope.message_id,
                "type": envelope.type,
                "claimed_sender": envelope.sender.instance,
                "signer": envelope.signer,
                "reason": reason,
                "topic": topic,
            },
        )
        return reason


# ---------------------------------------------------------------- keys on disk


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"SYNOD_SIGNING_KEY_FILE={path}: not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"SYNOD_SIGNING_KEY_FILE={path}: not an Ed25519 key")
    return key


def write_keys(directory: Path, principals: Mapping[str, str]) -> Path:
    """A key per principal (`<principal>.key`, mode 0600) and the keyring of them all.

    `principals` maps principal -> role. Returns the keyring's path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ring: dict[str, dict[str, str]] = {}
    for principal, role in principals.items():
        key = Ed25519PrivateKey.generate()
        path = directory / f"{principal}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        ring[principal] = {"role": role, "public_key": base64.b64encode(public).decode()}
    keyring = directory / "keyring.json"
    keyring.write_text(json.dumps({"principals": ring}, indent=2, sort_keys=True) + "\n")
    return keyring


def roles_of(principals: Iterable[str]) -> dict[str, str]:
    """principal -> role for instance names `role-N` (what `synod up` starts)."""
    return {p: p.rsplit("-", 1)[0] for p in principals}
