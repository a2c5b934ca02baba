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
