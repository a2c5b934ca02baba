"""The chart's promises about workloads, checked on the rendered objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import CHART, VALUES_FILES, render, values_id

ROLES = {"gateway", "planner", "researcher", "coder", "reviewer", "consensus"}
SELECTOR_KEYS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
}


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_every_role_is_hardened_and_probed(values: Path | None) -> None:
    objects = render(values)
    cm = next(o for o in objects if o["kind"] == "ConfigMap")
    drain = float(cm["data"]["SYNOD_DRAIN_TIMEOUT_S"])
    synod = [
        w
        for w in workloads(objects)
        if w["metadata"]["labels"]["app.kubernetes.io/component"] in ROLES
    ]
    assert {w["metadata"]["labels"]["app.kubernetes.io/component"] for w in synod} == ROLES
    for w in synod:
        assert set(w["spec"]["selector"]["matchLabels"]) == SELECTOR_KEYS
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        sleep = 0
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
            assert c["resources"]["requests"]
            sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert pod["terminationGracePeriodSeconds"] > drain + sleep


def test_reviewers_are_a_statefulset_with_voter_ids() -> None:
    objects = render(None)
    sts = next(
        o
        for o in objects
        if o["kind"] == "StatefulSet" and o["metadata"]["name"].endswith("-reviewer")
    )
    command = " ".join(sts["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "SYNOD_INSTANCE=reviewer-${HOSTNAME##*-}" in command


def test_supervisor_rbac_only_when_enabled() -> None:
    assert not [o for o in render(None) if o["kind"] in ("Role", "RoleBinding", "ClusterRole")]
    rbac = render(None, "--set", "supervisor.enabled=true")
    role = next(o for o in rbac if o["kind"] == "Role")
    rules = {
        (r["apiGroups"][0], res): set(r["verbs"]) for r in role["rules"] for res in r["resources"]
    }
    assert rules == {
        ("", "pods"): {"get", "list", "watch", "delete"},
        ("", "pods/eviction"): {"create"},
        ("apps", "deployments"): {"get", "list", "watch", "patch"},
        ("apps", "deployments/scale"): {"get", "patch"},
    }
    assert any(o["kind"] == "RoleBinding" for o in rbac)


def test_servicemonitor_needs_the_crd() -> None:
    prod = CHART / "ci" / "production-values.yaml"
    assert not [o for o in render(prod) if o["kind"] == "ServiceMonitor"]
    with_crd = render(prod, "--api-versions", "monitoring.coreos.com/v1")
    assert [o for o in with_crd if o["kind"] == "ServiceMonitor"]


def test_trial_kafka() -> None:
    objects = render(CHART / "ci" / "trial-values.yaml")
    kafka = next(
        o
        for o in objects
        if o["kind"] == "StatefulSet" and o["metadata"]["name"].endswith("-kafka")
    )
    assert kafka["spec"]["template"]["spec"]["containers"][0]["image"] == "apache/kafka:3.9.1"
    cm = next(o for o in objects if o["kind"] == "ConfigMap")
    assert cm["data"]["SYNOD_BOOTSTRAP"] == kafka["metadata"]["name"] + ":9092"


def _commands(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {
        w["metadata"]["labels"]["app.kubernetes.io/component"]: " ".join(
            w["spec"]["template"]["spec"]["containers"][0]["command"]
        )
        for w in workloads(objects)
        if w["metadata"]["labels"]["app.kubernetes.io/component"] in ROLES
    }


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_reload_wrapper_is_off_unless_asked(values: Path | None) -> None:
    commands = _commands(render(values))
    assert commands
    assert not any("synod.dev.devreload" in c for c in commands.values())


def test_dev_reload_wraps_every_role_in_the_reloader() -> None:
    commands = _commands(render(None, "--set", "dev.reload=true"))
    assert set(commands) == ROLES
    for role, command in commands.items():
        assert f"-m synod.dev.devreload synod_services.{role}" in command, command


def test_dev_reload_rejects_a_non_boolean() -> None:
    from .conftest import helm

    proc = helm("template", "x", str(CHART), "--set-string", "dev.reload=yes", check=False)
    assert proc.returncode != 0
    assert "reload" in proc.stderr


def test_llm_routing_and_the_openai_server_reach_the_services_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from synod.llm.selection import routing_in_force
    from synod.llm.settings import load_settings

    values = tmp_path / "routing-values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "config": {
                    "llm": {
                        "routing": {
                            "researcher": "openai:gpt-4.1-mini",
                            "coder.merge": "claude-opus-5-5",
                        },
                        "fallback": ["openai:llama3.1:8b", "sim:sim"],
                    }
                },
                "anthropic": {"apiKey": "sk-ant-chart"},
                "openai": {"baseUrl": "http://vllm.models:8000/v1", "apiKey": "sk-oai-chart"},
            }
        )
    )
    objects = render(values)
    cm = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    assert secrets["synod-ci-openai"]["stringData"] == {"OPENAI_API_KEY": "sk-oai-chart"}
    pod = next(w for w in workloads(objects))["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "synod-ci-openai"
    # What the chart renders is what the services' settings read.
    for name, value in cm.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-chart")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-oai-chart")
    routing = routing_in_force(load_settings())
    assert routing["routes"] == {
        "*": "anthropic:claude-sonnet-5-5 (default)",
        "coder.merge": "anthropic:claude-opus-5-5 (SYNOD_LLM_ROUTING coder.merge)",
        "researcher": "openai:gpt-4.1-mini (SYNOD_LLM_ROUTING researcher)",
    }
    assert routing["fallback"] == ["openai:llama3.1:8b", "sim:sim"]
    assert load_settings().openai_base_url == "http://vllm.models:8000/v1"


def test_the_schema_refuses_a_routing_key_that_is_no_role(tmp_path: Path) -> None:
    import yaml

    from .conftest import helm

    bad = tmp_path / "bad-routing.yaml"
    bad.write_text(yaml.safe_dump({"config": {"llm": {"routing": {"coders": "x"}}}}))
    proc = helm("lint", "--strict", str(CHART), "-f", str(bad), check=False)
    assert proc.returncode != 0
    assert "coders" in proc.stdout + proc.stderr
