"""A secured local broker: a CA made here, SCRAM users per role, ACLs from the rights table.

`prepare(run_dir)` makes what the broker needs before it starts: a CA and a
server certificate for `localhost` / 127.0.0.1 (the `cryptography` package;
nothing leaves run_dir), a SCRAM-SHA-512 user per role with a random password,
and an Ed25519 signing key per service principal with the keyring of their
public keys (`synod.transport.authorship`). After the broker is up, `grant`
gives each role's user the ACLs of `synod.transport.authorship.RIGHTS` (the
same table the chart's Strimzi KafkaUsers come from), through the operator's
PLAINTEXT door; the broker's authorizer denies everything else.

Every role's credentials go to one file, `<run_dir>/credentials.json` (mode
0600; `CREDENTIALS_FILE`): per role its username, password, mechanism, the
SASL_SSL bootstrap and the CA file; `env_for(role)` turns an entry into the
`SYNOD_KAFKA_*` variables a service reads.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from synod.dev.localkafka import ScramUser, Secured
from synod.transport.admin import AclBinding, create_acls
from synod.transport.authorship import RIGHTS, acls_for, write_keys

CREDENTIALS_FILE = "credentials.json"
MECHANISM = "SCRAM-SHA-512"

# Kafka's wire codes (org.apache.kafka.common.resource / acl).
_RESOURCE = {"topic": 2, "group": 3, "transactionalId": 5}
_PATTERN = {False: 3, True: 4}  # literal, prefixed
_OPERATION = {"Read": 3, "Write": 4, "Describe": 8}


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate (what clients trust) and key (signs server certificates)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def write_cert(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def server_keystore(self, path: Path) -> Path:
        """A PEM with a new key and its certificate for localhost, as Kafka's PEM keystore."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(
            serialization.Encoding.PEM
        )
        _write_secret(path, _private_pem(key) + chain)
        return path


@dataclass(frozen=True)
class Prepared:
    secured: Secured  # what localkafka.start needs
    ca_file: Path
    keyring_file: Path
    keys_dir: Path
    users: dict[str, ScramUser]  # role -> its user


def prepare(run_dir: Path, principals: Iterable[str] = ()) -> Prepared:
    """CA, server keystore, a user per role, signing keys for `principals` (`role-N`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tls = run_dir / "tls"
    tls.mkdir(exist_ok=True)
    ca = Authority.create("synod local CA")
    ca_file = ca.write_cert(tls / "ca.pem")
    keystore = ca.server_keystore(tls / "broker.pem")
    users = {
        role: ScramUser(f"synod-{role}", secrets.token_urlsafe(24), MECHANISM) for role in RIGHTS
    }
    named = {p: p.rsplit("-", 1)[0] for p in principals}
    unknown = sorted({r for r in named.values()} - set(RIGHTS))
    if unknown:
        raise ValueError(f"principals of unknown roles: {unknown}")
    keys_dir = run_dir / "keys"
    keyring = write_keys(keys_dir, named)
    return Prepared(Secured(tuple(users.values()), keystore), ca_file, keyring, keys_dir, users)


def acl_bindings(role: str, username: str, prefix: str = "") -> list[AclBinding]:
    """(resource type, name, pattern, principal, operation) for every grant of a role."""
    return [
        (
            _RESOURCE[acl.resource],
            acl.named(prefix),
            _PATTERN[acl.prefix],
            f"User:{username}",
            _OPERATION[op],
        )
        for acl in acls_for(role)
        for op in acl.operations
    ]


async def grant(operator_bootstrap: str, users: dict[str, ScramUser], prefix: str = "") -> int:
    """Create every role's ACLs through the operator's listener; returns how many."""
    return await create_acls(
        operator_bootstrap,
        [
            binding
            for role, user in users.items()
            for binding in acl_bindings(role, user.username, prefix)
        ],
    )


def write_credentials(run_dir: Path, prepared: Prepared, tls_bootstrap: str) -> Path:
    """Every role's credentials in one file, readable by its owner only."""
    doc = {
        "bootstrap": tls_bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": MECHANISM,
        "ssl_cafile": str(prepared.ca_file),
        "keyring_file": str(prepared.keyring_file),
        "keys_dir": str(prepared.keys_dir),
        "roles": {
            role: {"username": u.username, "password": u.password}
            for role, u in prepared.users.items()
        },
    }
    path = run_dir / CREDENTIALS_FILE
    _write_secret(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    return path


def env_for(credentials: dict[str, Any], role: str, principal: str | None = None) -> dict[str, str]:
    """The SYNOD_* variables a service of `role` reads to log in and sign."""
    user = credentials["roles"][role]
    env = {
        "SYNOD_BOOTSTRAP": credentials["bootstrap"],
        "SYNOD_KAFKA_SECURITY_PROTOCOL": credentials["security_protocol"],
        "SYNOD_KAFKA_SASL_MECHANISM": credentials["sasl_mechanism"],
        "SYNOD_KAFKA_SASL_USERNAME": user["username"],
        "SYNOD_KAFKA_SASL_PASSWORD": user["password"],
        "SYNOD_KAFKA_SSL_CAFILE": credentials["ssl_cafile"],
        "SYNOD_KEYRING_FILE": credentials["keyring_file"],
    }
    if principal is not None:
        key = Path(credentials["keys_dir"]) / f"{principal}.key"
        if key.exists():
            env["SYNOD_SIGNING_KEY_FILE"] = str(key)
            env["SYNOD_PRINCIPAL"] = principal
    return env


CLI_ENV_FILE = "cli.env"


def write_cli_env(run_dir: Path, credentials: dict[str, Any], prefix: str = "") -> Path:
    """The `synod` CLI's login as shell variables (`set -a; . cli.env; set +a`), owner-only.

    The CLI's user reads every topic and writes only synod.tasks; the keyring
    lets `synod check` count forged records as the services do.
    """
    env = env_for(credentials, "cli") | {"SYNOD_TOPIC_PREFIX": prefix}
    lines = [f"{name}={shlex.quote(value)}" for name, value in sorted(env.items())]
    path = run_dir / CLI_ENV_FILE
    _write_secret(path, ("\n".join(lines) + "\n").encode())
    return path
