"""`synod config`: the effective settings, secrets masked, and the model routing in force."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from synod.cli.main import app

RUNNER = CliRunner()
ENV = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "SYNOD_LLM_BACKEND",
    "SYNOD_OPENAI_BASE_URL",
    "OPENAI_BASE_URL",
    "SYNOD_LLM_MODEL",
    "SYNOD_LLM_ROUTING",
    "SYNOD_LLM_FALLBACK",
    "SYNOD_MODEL_CODER",
    "SYNOD_MODEL_RESEARCHER",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_the_routing_in_force_with_where_each_route_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-oai-secret")
    monkeypatch.setenv("SYNOD_MODEL_RESEARCHER", "openai:gpt-4.1-mini")
    monkeypatch.setenv("SYNOD_LLM_ROUTING", '{"coder.merge": "claude-opus-5-5"}')
    monkeypatch.setenv("SYNOD_LLM_FALLBACK", "openai:gpt-4.1,sim:sim")
    result = RUNNER.invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    assert "secret" not in result.stdout
    doc = json.loads(result.stdout)
    routing = doc["routing"]
    assert (routing["backend"], routing["why"]) == ("anthropic", "ANTHROPIC_API_KEY is set")
    assert routing["routes"] == {
        "*": "anthropic:claude-sonnet-5-5 (default)",
        "coder.merge": "anthropic:claude-opus-5-5 (SYNOD_LLM_ROUTING coder.merge)",
        "researcher": "openai:gpt-4.1-mini (SYNOD_MODEL_RESEARCHER)",
    }
    assert routing["fallback"] == ["openai:gpt-4.1", "sim:sim"]
    assert doc["llm"]["openai_api_key"] == "**********"


def test_bad_routing_exits_2_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNOD_LLM_ROUTING", "coders=claude-opus-5-5")
    result = RUNNER.invoke(app, ["config"])
    assert result.exit_code == 2
    assert "SYNOD_LLM_ROUTING" in result.stderr
