"""Kafka security settings: validated at start-up, applied to every client."""

from __future__ import annotations

import ast
import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from synod.transport.security import KafkaSecurity

ROOT = Path(__file__).resolve().parents[3]
CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}


def test_plaintext_by_default_adds_nothing_but_the_protocol() -> None:
    assert KafkaSecurity().client_kwargs() == {"security_protocol": "PLAINTEXT"}


def test_sasl_scram_credentials_reach_the_client() -> None:
    security = KafkaSecurity(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="synod",
        sasl_password=SecretStr("s3cret"),
    )
    assert security.client_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "synod",
        "sasl_plain_password": "s3cret",
    }
    assert "s3cret" not in repr(security)  # never in logs or `synod config`


def test_tls_builds_a_verifying_context() -> None:
    kwargs = KafkaSecurity(security_protocol="SSL").client_kwargs()
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "SYNOD_KAFKA_SASL_PASSWORD"),
        ({"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.crt"}, "no such file"),
        ({"security_protocol": "SSL", "ssl_certfile": __file__}, "go together"),
    ],
)
def test_incomplete_settings_fail_naming_the_variable(fields: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        KafkaSecurity(**fields)  # type: ignore[arg-type]


def test_environment_names_are_the_ones_the_chart_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNOD_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SYNOD_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SYNOD_KAFKA_SASL_USERNAME", "synod")
    monkeypatch.setenv("SYNOD_KAFKA_SASL_PASSWORD", "pw")
    assert KafkaSecurity().client_kwargs()["sasl_plain_username"] == "synod"
    rendered = "".join(
        p.read_text() for p in (ROOT / "charts/synod/templates").glob("*") if p.is_file()
    )
    for name in ("SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD"):
        assert f"SYNOD_KAFKA_{name}" in rendered


def test_every_kafka_client_in_the_code_is_built_with_the_security_settings() -> None:
    missing = []
    for path in [*(ROOT / "libs").rglob("*.py"), *(ROOT / "services").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in CLIENTS:
                continue
            spread = [k.value for k in node.keywords if k.arg is None]
            if not any(
                isinstance(v, ast.Call) and getattr(v.func, "id", "") == "client_security"
                for v in spread
            ):
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not missing, f"Kafka clients built without client_security(): {missing}"
