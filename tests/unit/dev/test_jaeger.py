"""`synod up --jaeger`: a clear error without the binary; a config that stays on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from synod.cli.main import app
from synod.dev import jaeger


def test_up_with_jaeger_but_no_binary_says_how_to_build_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SYNOD_JAEGER", str(tmp_path / "missing-jaeger"))
    result = CliRunner().invoke(app, ["up", "--jaeger", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "make jaeger" in result.output


def test_the_config_listens_on_loopback_only() -> None:
    config = yaml.safe_load(jaeger.CONFIG.format(**jaeger.DEFAULT_PORTS))
    endpoints = [
        config["extensions"]["jaeger_query"]["http"]["endpoint"],
        config["extensions"]["jaeger_query"]["grpc"]["endpoint"],
        config["extensions"]["healthcheckv2"]["http"]["endpoint"],
        *(p["endpoint"] for p in config["receivers"]["otlp"]["protocols"].values()),
    ]
    assert endpoints
    assert all(e.startswith("127.0.0.1:") for e in endpoints)
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
