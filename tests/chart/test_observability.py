"""Alert rules, dashboards and tracing settings in the chart: off by default, valid when on."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from .conftest import CHART, helm
from .conftest import render as render_chart
from .crds import validate_crd_object
from .test_chart import OPERATORS

PRODUCTION = CHART / "ci" / "production-values.yaml"


def kinds(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def config_of(objects: list[dict[str, Any]]) -> dict[str, str]:
    [config] = [
        o for o in kinds(objects, "ConfigMap") if o["metadata"]["name"].endswith("-synod")
    ] or [o for o in kinds(objects, "ConfigMap") if "SYNOD_BOOTSTRAP" in o.get("data", {})]
    data: dict[str, str] = config["data"]
    return data


def test_everything_is_off_by_default() -> None:
    objects = render_chart(None, *OPERATORS)
    assert not kinds(objects, "PrometheusRule")
    assert not [
        o for o in kinds(objects, "ConfigMap") if o["metadata"]["name"].endswith("-dashboards")
    ]
    assert not [k for k in config_of(objects) if k.startswith("OTEL_")]


def test_the_rule_needs_the_crd_and_is_the_alerts_file_verbatim() -> None:
    assert not kinds(render_chart(PRODUCTION), "PrometheusRule")
    [rule] = kinds(render_chart(PRODUCTION, *OPERATORS), "PrometheusRule")
    validate_crd_object(rule)
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    expected = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == expected  # Prometheus' {{ $labels }} reach it untemplated
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "SynodBreakerOpen",
        "SynodConsumerLagGrowing",
        "SynodDeadLetters",
        "SynodTaskFailureRatio",
        "SynodInstanceWithoutHeartbeat",
    } <= alerts


def test_the_rule_check_rejects_a_broken_rule() -> None:
    from jsonschema import ValidationError

    [rule] = kinds(render_chart(PRODUCTION, *OPERATORS), "PrometheusRule")
    broken = {**rule, "spec": {"groups": [{"name": "x", "rules": [{"alert": "A", "for": 5}]}]}}
    with pytest.raises(ValidationError):
        validate_crd_object(broken)


def test_dashboards_are_a_configmap_for_the_grafana_sidecar() -> None:
    [dashboards] = [
        o
        for o in kinds(render_chart(PRODUCTION), "ConfigMap")
        if o["metadata"]["name"].endswith("-dashboards")
    ]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    assert sorted(dashboards["data"]) == files
    for name, text in dashboards["data"].items():
        board = json.loads(text)
        assert board["uid"], name
        assert board["panels"], name


def test_tracing_sets_the_standard_variables() -> None:
    config = config_of(render_chart(PRODUCTION))
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert config["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert config["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert config["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert "OTEL_SERVICE_NAME" not in config  # each service names itself synod-<role>


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (["--set", "tracing.enabled=true"], "tracing.endpoint is required"),
        (
            [
                "--set",
                "tracing.enabled=true,tracing.endpoint=http://x:4318,tracing.protocol=http/json",
            ],
            "protocol",
        ),
    ],
)
def test_bad_tracing_settings_fail_with_the_setting_named(
    settings: list[str], complaint: str
) -> None:
    proc = helm("template", "x", str(CHART), "--kube-version", "1.31.0", *settings, check=False)
    assert proc.returncode != 0
    assert complaint in proc.stderr
