"""helm lint/template on every values file, every object against the Kubernetes schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .conftest import CHART, KUBE_VERSION, VALUES_FILES, helm, render, values_id

# The Prometheus Operator CRD is not in kubernetes-validate: a small schema of
# the fields we use, so a ServiceMonitor is checked rather than waved through.
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}
MONITORING = ("--api-versions", "monitoring.coreos.com/v1")
PARAMS = pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)


def validate_object(obj: dict[str, Any]) -> None:
    if obj.get("apiVersion") == "monitoring.coreos.com/v1":
        jsonschema.validate(obj, SERVICE_MONITOR_SCHEMA)
        return
    # strict: unknown fields fail; SchemaNotFoundError (an unknown kind) fails too.
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


@PARAMS
def test_lint_strict(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["-f", str(values)]
    helm(*args)


@PARAMS
def test_rendered_objects_match_kubernetes_schemas(values: Path | None) -> None:
    objects = render(values, *MONITORING)
    assert objects
    problems = []
    for obj in objects:
        try:
            validate_object(obj)
        except Exception as exc:  # collect all, report together
            name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            problems.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    assert not problems, "\n".join(problems)


def test_validation_can_fail() -> None:
    """The checks bite: a bad field and an unknown kind are both rejected."""
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "datta": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(bad)
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_object(unknown)


def test_schema_rejects_invalid_values(tmp_path: Path) -> None:
    invalid = tmp_path / "invalid-values.yaml"
    invalid.write_text(yaml.safe_dump({"roles": {"coder": {"replicas": -1}}, "typo": True}))
    proc = helm("lint", "--strict", str(CHART), "-f", str(invalid), check=False)
    assert proc.returncode != 0
    assert "typo" in proc.stdout + proc.stderr
    tag = tmp_path / "latest.yaml"
    tag.write_text(yaml.safe_dump({"image": {"tag": "latest"}}))
    assert helm("template", "x", str(CHART), "-f", str(tag), check=False).returncode != 0


def test_values_schema_is_draft07_and_closed() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)
