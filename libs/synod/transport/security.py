"""How every Kafka client of a process authenticates and encrypts: SASL (SCRAM) and TLS.

Read once from `SYNOD_KAFKA_*` (the chart renders these from its values) and
applied to every producer, consumer and admin client through
`client_security()`, so no client can be built that ignores them. A missing
password or an unreadable CA file fails at start-up with the variable's name,
not at the first fetch with a broker-side "authentication failed".
"""

from __future__ import annotations

import functools
import socket
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from synod.errors import ConfigError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


class KafkaSecurity(BaseSettings):
    """SYNOD_KAFKA_SECURITY_PROTOCOL, _SASL_MECHANISM, _SASL_USERNAME, _SASL_PASSWORD,
    _SSL_CAFILE, _SSL_CERTFILE, _SSL_KEYFILE."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_KAFKA_", extra="ignore")

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr = Field(default=SecretStr(""))
    ssl_cafile: str = ""  # empty: the system's trust store
    ssl_certfile: str = ""  # client certificate, for mutual TLS
    ssl_keyfile: str = ""

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_username and self.sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"SYNOD_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "SYNOD_KAFKA_SASL_USERNAME and SYNOD_KAFKA_SASL_PASSWORD"
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"SYNOD_KAFKA_{name.upper()}={path}: no such file")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("SYNOD_KAFKA_SSL_CERTFILE and SYNOD_KAFKA_SSL_KEYFILE go together")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL_"):
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.get_secret_value(),
            )
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context


@functools.cache
def _from_environment() -> KafkaSecurity:
    try:
        return KafkaSecurity()
    except ValueError as exc:
        raise ConfigError(f"Kafka security settings: {exc}") from exc


def client_security(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """The security kwargs every Kafka client of this process must be built with."""
    return (security or _from_environment()).client_kwargs()


def tls_problem(security: KafkaSecurity, bootstrap: str, timeout_s: float = 5.0) -> str:
    """Why a TLS handshake with the first bootstrap address fails, or "" (it works, or
    the address cannot be reached at all): aiokafka reports both as "unable to bootstrap"."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        with (
            socket.create_connection((host, int(port)), timeout=timeout_s) as raw,
            security.ssl_context().wrap_socket(raw, server_hostname=host),
        ):
            return ""
    except ssl.SSLCertVerificationError as exc:
        return (
            f" (TLS: the broker's certificate is not trusted: {exc.verify_message or exc}; "
            f"check SYNOD_KAFKA_SSL_CAFILE={security.ssl_cafile or '<system trust store>'}: "
            "it must be the CA that signed the broker's certificate)"
        )
    except ssl.SSLError as exc:
        return f" (TLS handshake failed: {exc}; check SYNOD_KAFKA_SSL_* and the broker's listener)"
    except (OSError, ValueError):
        return ""


def security_hint(bootstrap: str | None = None) -> str:
    """What to check when a secured client cannot connect (aiokafka reports a failed
    SASL handshake as "unable to bootstrap")."""
    try:
        security = _from_environment()
    except ConfigError:
        return ""
    if security.uses_tls and bootstrap:
        problem = tls_problem(security, bootstrap)
        if problem:
            return problem
    if security.security_protocol.startswith("SASL_"):
        return (
            f" (connecting with {security.security_protocol} {security.sasl_mechanism} as "
            f"{security.sasl_username!r}: check SYNOD_KAFKA_SASL_USERNAME/_PASSWORD and that "
            "the address is the broker's SASL listener)"
        )
    if security.uses_tls:
        return " (connecting with TLS: check SYNOD_KAFKA_SSL_CAFILE and the broker's certificate)"
    return ""


def reload_from_environment() -> None:
    """Forget the cached settings (tests change the environment)."""
    _from_environment.cache_clear()
