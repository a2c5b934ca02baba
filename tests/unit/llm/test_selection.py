"""Choosing the backend from the environment, and the one line that says which."""

from __future__ import annotations

from pathlib import Path

import pytest

from synod.errors import ConfigError
from synod.llm import (
    LLMRequest,
    LLMSettings,
    SimBackend,
    backend_choice,
    load_settings,
    select_backend,
)
from synod.llm.resilient import ResilientBackend

ENV = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "SYNOD_LLM_BACKEND",
    "SYNOD_LLM_FAULT_PROFILE",
    "SYNOD_LLM_SIM_SEED",
    "SYNOD_LLM_SIM_LATENCY",
    "SYNOD_LLM_FALLBACK_MODELS",
    "SYNOD_LLM_PRICES",
    "SYNOD_LLM_MODEL",
    "SYNOD_LLM_MAX_TOKENS",
    "SYNOD_LLM_FALLBACK",
    "SYNOD_ROLE_CONCURRENCY",
    "SYNOD_LLM_PROVIDER_CONCURRENCY",
    "SYNOD_LLM_BREAKER_MIN_CALLS",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "SYNOD_OPENAI_BASE_URL",
    "SYNOD_OPENAI_MODEL",
    "SYNOD_LLM_ROUTING",
    "SYNOD_MODEL_PLANNER",
    "SYNOD_MODEL_RESEARCHER",
    "SYNOD_MODEL_CODER",
    "SYNOD_MODEL_REVIEWER",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def selected(lines: list[str]) -> tuple[object, list[str]]:
    return select_backend(notice=lines.append), lines


async def test_no_key_means_sim_and_says_why() -> None:
    backend, lines = selected([])
    assert isinstance(backend, ResilientBackend)
    assert isinstance(backend.inner, SimBackend)
    assert lines == [
        "llm: sim backend (no ANTHROPIC_API_KEY), fault profile none, seed 0, "
        "latency lognormal:0.3:0.5"
    ]


async def test_a_key_means_anthropic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-secret")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    backend, lines = selected([])
    try:
        assert backend.name == "anthropic"  # type: ignore[attr-defined]
        assert len(lines) == 1
        assert lines[0].startswith("llm: anthropic backend (ANTHROPIC_API_KEY is set)")
        assert "base URL http://127.0.0.1:9" in lines[0]
        assert "sk-test-secret" not in lines[0]
    finally:
        await backend.aclose()  # type: ignore[attr-defined]


def test_sim_can_be_forced_even_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("SYNOD_LLM_BACKEND", "sim")
    assert backend_choice(load_settings()) == ("sim", "SYNOD_LLM_BACKEND=sim")


def test_anthropic_forced_without_a_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNOD_LLM_BACKEND", "anthropic")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        select_backend(notice=lambda line: None)


def test_an_empty_key_is_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    assert backend_choice(load_settings())[0] == "sim"


def test_sim_settings_reach_the_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    profile = tmp_path / "mine.toml"
    profile.write_text("[rates]\nwrong = 0.5\n")
    monkeypatch.setenv("SYNOD_LLM_FAULT_PROFILE", str(profile))
    monkeypatch.setenv("SYNOD_LLM_SIM_SEED", "42")
    monkeypatch.setenv("SYNOD_LLM_SIM_LATENCY", "fixed:0")
    backend, lines = selected([])
    sim = backend.inner  # type: ignore[attr-defined]
    assert isinstance(sim, SimBackend)
    assert (sim.seed, sim.profile.rate("wrong"), sim.latency.mean_s) == (42, 0.5, 0)
    assert "fault profile mine, seed 42, latency fixed:0" in lines[0]


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNOD_LLM_FALLBACK_MODELS", "claude-haiku-4-5, claude-opus-5")
    monkeypatch.setenv("SYNOD_LLM_PRICES", '{"house": [1, 2]}')
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-hidden")
    settings = load_settings()
    assert settings.fallback_models == ["claude-haiku-4-5", "claude-opus-5"]
    assert settings.prices == {"house": (1.0, 2.0)}
    assert "sk-hidden" not in repr(settings)
    assert "sk-hidden" not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SYNOD_LLM_MAX_TOKENS", "0"),
        ("SYNOD_LLM_BACKEND", "gpt"),
        ("SYNOD_LLM_BACKEND", "openai"),  # without OPENAI_API_KEY or a base URL
        ("SYNOD_LLM_SIM_LATENCY", "gamma:1"),
        ("SYNOD_LLM_FAULT_PROFILE", "chaotic"),
    ],
)
def test_bad_settings_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError):
        select_backend(notice=lambda line: None)


def test_settings_can_be_built_by_field_name() -> None:
    settings = LLMSettings(backend="sim", anthropic_api_key="k", sim_seed=3)
    assert settings.has_api_key
    assert backend_choice(settings)[0] == "sim"


def test_the_fallback_chain_and_bulkheads_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNOD_LLM_FALLBACK", "claude-haiku-4-5, sim:tiny")
    monkeypatch.setenv("SYNOD_ROLE_CONCURRENCY", "coder=2,researcher=3")
    monkeypatch.setenv("SYNOD_LLM_PROVIDER_CONCURRENCY", '{"sim": 8}')
    monkeypatch.setenv("SYNOD_LLM_BREAKER_MIN_CALLS", "4")
    backend, lines = selected([])
    assert isinstance(backend, ResilientBackend)
    assert [r.key for r in backend.fallbacks] == ["sim/claude-haiku-4-5", "sim/tiny"]
    assert backend.breaker_config.min_calls == 4
    assert lines[-1] == "llm: fallback sim/claude-haiku-4-5 -> sim/tiny"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SYNOD_LLM_FALLBACK", "openai:gpt-9"),
        ("SYNOD_ROLE_CONCURRENCY", "coder=0"),
        ("SYNOD_ROLE_CONCURRENCY", "coder"),
        ("SYNOD_LLM_BREAKER_MIN_CALLS", "0"),
    ],
)
def test_bad_resilience_settings_are_config_errors_naming_them(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="(?i)" + name.removeprefix("SYNOD_LLM_").split("_")[0]):
        select_backend(notice=lambda line: None)


def test_an_anthropic_fallback_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNOD_LLM_FALLBACK", "anthropic:claude-haiku-4-5")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        select_backend(notice=lambda line: None)


async def test_an_openai_key_alone_means_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-oai-secret")
    monkeypatch.setenv("SYNOD_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    backend, lines = selected([])
    try:
        assert backend.name == "openai"  # type: ignore[attr-defined]
        assert lines[0].startswith(
            "llm: openai backend (OPENAI_API_KEY is set), model gpt-4.1-mini"
        )
        assert "sk-oai-secret" not in " ".join(lines)
    finally:
        await backend.aclose()  # type: ignore[attr-defined]


async def test_routing_and_fallbacks_build_a_backend_per_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    monkeypatch.setenv("SYNOD_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SYNOD_MODEL_RESEARCHER", "openai:llama3.1:8b")
    monkeypatch.setenv("SYNOD_LLM_FALLBACK", "openai:gpt-4.1,sim:sim")
    backend, lines = selected([])
    assert isinstance(backend, ResilientBackend)
    try:
        assert sorted(backend.backends) == ["anthropic", "openai", "sim"]
        assert backend.default_model("openai") == "gpt-4.1-mini"
        research = LLMRequest(role="researcher", task_id="t", step_id="s", prompt="p")
        assert [r.spec for r in backend.routes(research)] == [
            "openai:llama3.1:8b",
            "openai:gpt-4.1",
            "sim:sim",
        ]
        assert lines[-1].startswith("llm: routing *=anthropic:claude-sonnet-5-5 (default)")
    finally:
        await backend.aclose()


def test_synod_llm_model_is_the_primarys_default_only() -> None:
    settings = LLMSettings(backend="openai", model="qwen3:32b", openai_base_url="http://x/v1")
    assert settings.default_model("openai", "openai") == "qwen3:32b"
    assert settings.default_model("anthropic", "openai") == "claude-sonnet-5-5"
    assert LLMSettings().default_model("openai", "anthropic") == "gpt-4.1-mini"
