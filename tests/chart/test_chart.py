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
from .crds import CRD_FILES, STRIMZI_KINDS, strimzi_problems, validate_crd_object

# The optional kinds exist only where their operators are installed; tell helm
# the cluster serves them so those objects are rendered and checked too.
OPERATORS = (
    "--api-versions",
    "monitoring.coreos.com/v1",
    "--api-versions",
    "keda.sh/v1alpha1",
    "--api-versions",
    "kafka.strimzi.io/v1beta2",
)
PARAMS = pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)


def validate_object(obj: dict[str, Any]) -> None:
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_FILES:
        validate_crd_object(obj)
        return
    if key in STRIMZI_KINDS:
        return  # checked all at once by node, in the test
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
    objects = render(values, *OPERATORS)
    assert objects
    strimzi = [o for o in objects if (o.get("apiVersion"), o.get("kind")) in STRIMZI_KINDS]
    problems = strimzi_problems(strimzi) if strimzi else []
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
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "d"}, "triggers": [{"type": "kafka", "metadata": {}}]},
    }
    validate_crd_object(scaled)
    with pytest.raises(jsonschema.ValidationError):  # KEDA wants strings, not numbers
        validate_crd_object(
            {
                **scaled,
                "spec": {
                    **scaled["spec"],
                    "triggers": [{"type": "kafka", "metadata": {"lagThreshold": 5}}],
                },
            }
        )
    with pytest.raises(jsonschema.ValidationError):  # a typo is not pruned silently
        validate_crd_object({**scaled, "spec": {**scaled["spec"], "minReplicas": 1}})
    topic = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": {"name": "t"},
        "spec": {"partitions": "twelve"},
    }
    [problem] = strimzi_problems([topic])
    assert "partitions" in problem


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
