"""The chart's signing keys: every role's pods get the keyring and their own private keys
only, as the files and SYNOD_* variables the service host reads (ADR 0014)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from synod.cli.main import _CHART_PRINCIPALS
from synod.transport.authorship import Authorship, load_private_key, verdict, write_keys
from synod.wire import (
    BallotDeadline,
    Envelope,
    Sender,
    StepCompleted,
    TaskFailed,
    Vote,
)
from synod.wire.messages import QuarantineNotice, TaskCancelRequested

from .conftest import CHART, KUBE_VERSION, helm, render
from .test_chart import validate_object

ROLES = ("gateway", "planner", "researcher", "coder", "reviewer", "consensus", "supervisor")
MOUNT = "/etc/synod/signing"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("keys")
    principals = {p: p for p in _CHART_PRINCIPALS} | {f"reviewer-{n}": "reviewer" for n in range(4)}
    write_keys(out, principals)
    return out


def set_files(keys: Path, leave_out: str = "") -> list[str]:
    args = ["--set", "signing.enabled=true", "--set", "supervisor.enabled=true"]
    args += ["--set", "roles.reviewer.replicas=4"]
    args += ["--set-file", f"signing.keyring={keys / 'keyring.json'}"]
    for key in sorted(keys.glob("*.key")):
        if key.stem == leave_out:
            continue
        args += ["--set-file", f"signing.keys.{key.stem}={key}"]
    return args


def workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """component -> pod spec of each Synod role's Deployment or StatefulSet."""
    return {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
    }


def public_b64(path: Path) -> str:
    public = load_private_key(path).public_key()
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def test_every_role_gets_the_keyring_and_its_own_keys_only(keys: Path) -> None:
    objects = render(None, *set_files(keys))
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Secret"):  # what signing changes
            validate_object(obj)
    secret = next(o for o in objects if o["metadata"]["name"] == "synod-ci-signing")
    stored = secret["stringData"]
    ring = json.loads(stored["keyring.json"])["principals"]
    assert ring == json.loads((keys / "keyring.json").read_text())["principals"]
    pods = workloads(objects)
    assert set(pods) == set(ROLES)
    for role, pod in pods.items():
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["SYNOD_KEYRING_FILE"] == f"{MOUNT}/keyring.json", role
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "signing"]
        assert mount == {"name": "signing", "mountPath": MOUNT, "readOnly": True}
        (volume,) = [v for v in pod["volumes"] if v["name"] == "signing"]
        assert volume["secret"]["secretName"] == "synod-ci-signing"
        items = {i["key"]: i["path"] for i in volume["secret"]["items"]}
        own = [f"reviewer-{n}" for n in range(4)] if role == "reviewer" else [role]
        # Another role's private key never reaches this pod.
        assert items == {"keyring.json": "keyring.json"} | {f"{p}.key": f"{p}.key" for p in own}
        for principal in own:
            # The key a pod signs with is the one the keyring names for it.
            assert ring[principal]["role"] == role
            assert public_b64(keys / f"{principal}.key") == ring[principal]["public_key"]
            assert stored[f"{principal}.key"] == (keys / f"{principal}.key").read_text()
        if role == "reviewer":
            command = container["command"][-1]
            # Its ordinal names its key, so it votes only as itself.
            assert "SYNOD_PRINCIPAL=reviewer-${HOSTNAME##*-}" in command
            assert f"SYNOD_SIGNING_KEY_FILE={MOUNT}/reviewer-${{HOSTNAME##*-}}.key" in command
            assert "SYNOD_INSTANCE=reviewer-${HOSTNAME##*-}" in command
        else:
            assert env["SYNOD_PRINCIPAL"] == role
            assert env["SYNOD_SIGNING_KEY_FILE"] == f"{MOUNT}/{role}.key"


def test_an_existing_secret_is_mounted_and_none_is_made() -> None:
    objects = render(
        None, "--set", "signing.enabled=true", "--set", "signing.existingSecret=my-keys"
    )
    assert not [o for o in objects if o["metadata"]["name"].endswith("-signing")]
    for role, pod in workloads(objects).items():
        (volume,) = [v for v in pod["volumes"] if v["name"] == "signing"]
        assert volume["secret"]["secretName"] == "my-keys", role


def test_signing_off_mounts_nothing() -> None:
    for role, pod in workloads(render(None)).items():
        assert all(v["name"] != "signing" for v in pod["volumes"]), role
        env = {e["name"] for e in pod["containers"][0]["env"]}
        assert not env & {"SYNOD_KEYRING_FILE", "SYNOD_SIGNING_KEY_FILE"}, role


def test_missing_keys_fail_the_install_with_what_to_run(keys: Path) -> None:
    base = ["template", "synod-ci", str(CHART), "--kube-version", KUBE_VERSION]
    proc = helm(*base, "--set", "signing.enabled=true", check=False)
    assert proc.returncode != 0
    assert "signing.existingSecret" in proc.stderr
    proc = helm(*base, *set_files(keys, leave_out="reviewer-3"), check=False)
    assert proc.returncode != 0
    assert "signing.keys.reviewer-3 is missing" in proc.stderr


def test_what_a_pod_is_given_signs_messages_the_keyring_accepts(
    keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pod's mounted files and variables, as the service host loads them."""
    objects = render(None, *set_files(keys))
    stored = next(o for o in objects if o["metadata"]["name"] == "synod-ci-signing")["stringData"]
    authored = {
        "gateway": TaskCancelRequested(principal="tester"),
        "planner": TaskFailed(reason="r"),
        "researcher": StepCompleted(step_id="s", output="o"),
        "coder": StepCompleted(step_id="s", output="o"),
        "consensus": BallotDeadline(proposal_id="p", ballot=1),
        "supervisor": QuarantineNotice(instance="coder-0", reason="r"),
    }
    for role, pod in workloads(objects).items():
        mounted = tmp_path / role
        mounted.mkdir()
        (volume,) = [v for v in pod["volumes"] if v["name"] == "signing"]
        for item in volume["secret"]["items"]:
            (mounted / item["path"]).write_text(stored[item["key"]])
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        principal = "reviewer-2" if role == "reviewer" else role  # the command sets it
        monkeypatch.setenv(
            "SYNOD_KEYRING_FILE", env["SYNOD_KEYRING_FILE"].replace(MOUNT, str(mounted))
        )
        monkeypatch.setenv("SYNOD_PRINCIPAL", principal)
        monkeypatch.setenv("SYNOD_SIGNING_KEY_FILE", str(mounted / f"{principal}.key"))
        host = Authorship.from_environment(f"{role}-pod")
        assert host.signer is not None, role
        assert host.keyring is not None, role
        body = authored.get(role) or Vote(proposal_id="p", choice="c", voter=principal)
        sent = host.signer.sign(
            Envelope.new(body, sender=Sender(role=role, instance=principal), task_id="t")
        )
        assert verdict(host.keyring, sent) is None, role
