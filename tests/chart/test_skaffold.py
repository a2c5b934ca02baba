"""skaffold.yaml against the published v4beta14 JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from .conftest import ROOT

SCHEMA = Path("/work/shared/schemas/skaffold-v4beta14.json")


def test_skaffold_matches_schema() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(config, schema)
    assert config["apiVersion"] == "skaffold/v4beta14"
    assert {p["name"] for p in config["profiles"]} >= {"dev", "trial-kafka"}


def test_skaffold_schema_check_can_fail() -> None:
    schema = json.loads(SCHEMA.read_text())
    bad = {"apiVersion": "skaffold/v4beta14", "kind": "Config", "bulid": {}}
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert list(validator.iter_errors(bad))


def test_dev_profile_reloads_in_place_and_only_there() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert "dev.reload" not in str(config["deploy"])
    dev = next(p for p in config["profiles"] if p["name"] == "dev")
    set_values = next(
        op["value"] for op in dev["patches"] if op["path"] == "/deploy/helm/releases/0/setValues"
    )
    assert set_values["dev.reload"] is True
    for other in config["profiles"]:
        if other["name"] != "dev":
            assert "dev.reload" not in str(other)
