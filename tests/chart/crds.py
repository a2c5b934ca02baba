"""Validate custom resources against their own CRDs, offline (`make tools` fetches them).

KEDA ScaledObject, Prometheus Operator ServiceMonitor and PrometheusRule: the openAPIV3Schema
of the CRD YAML from their Go modules, made strict (an unknown field fails,
as `kubectl apply --validate=strict` would). Strimzi KafkaTopic and KafkaUser:
Strimzi's schemas as compiled validators from npm (@kubernetes-models), run
with node. A custom kind with no schema here is an error, never a pass.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from .conftest import ROOT

TOOLS = ROOT / ".tools"
CRD_FILES = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}
STRIMZI_KINDS = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"),
}


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Close every object schema that lists its properties and does not say it keeps
    unknown fields: the API server prunes or rejects those, so they are typos."""
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            pattern = node.get("pattern")
            if isinstance(pattern, str) and pattern.startswith("^(?i)"):
                # Go's RE2 takes a flag group anywhere; Python only at the start.
                node["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    path = TOOLS / "crds" / CRD_FILES[(api_version, kind)]
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools`", pytrace=False)
    crd = yaml.safe_load(path.read_text())
    version = api_version.split("/")[1]
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _strict(served["schema"]["openAPIV3Schema"])
    # metadata is the API server's to check (kubernetes-validate covers ObjectMeta).
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def validate_crd_object(obj: dict[str, Any]) -> None:
    jsonschema.validate(obj, crd_schema(obj["apiVersion"], obj["kind"]))


def strimzi_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Problems node's Strimzi validators find, one line per bad object."""
    modules = TOOLS / "npm" / "node_modules" / "@kubernetes-models" / "strimzi-kafka-operator"
    if not modules.exists():
        pytest.fail(f"{modules} is missing: run `make tools`", pytrace=False)
    script = (
        'import { KafkaTopic } from "@kubernetes-models/strimzi-kafka-operator/'
        'kafka.strimzi.io/v1beta2/KafkaTopic";\n'
        'import { KafkaUser } from "@kubernetes-models/strimzi-kafka-operator/'
        'kafka.strimzi.io/v1beta2/KafkaUser";\n'
        "import { readFileSync } from 'node:fs';\n"
        "const kinds = { KafkaTopic, KafkaUser };\n"
        "const problems = [];\n"
        "for (const obj of JSON.parse(readFileSync(0, 'utf8'))) {\n"
        "  try { new kinds[obj.kind](obj).validate(); }\n"
        "  catch (e) { problems.push(`${obj.kind}/${obj.metadata.name}: ${e.message}`); }\n"
        "}\n"
        "console.log(JSON.stringify(problems));\n"
    )
    runner = TOOLS / "npm" / "validate-strimzi.mjs"
    runner.write_text(script)
    proc = subprocess.run(
        ["node", str(runner)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=False,
        cwd=TOOLS / "npm",
    )
    if proc.returncode != 0:
        pytest.fail(f"node could not run the Strimzi validators:\n{proc.stderr}", pytrace=False)
    problems: list[str] = json.loads(proc.stdout)
    return problems
