"""Fault profiles: the built-ins, the file format, and clear errors for bad files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from synod.errors import ConfigError
from synod.llm import PROFILES, FaultProfile, Latency, load_profile


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_builtin_profiles_by_name() -> None:
    assert {"none", "flaky", "hostile"} <= set(PROFILES)
    assert load_profile("hostile") is PROFILES["hostile"]


def test_toml_profile(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "liars.toml",
        """
        repair_success = 0.25
        [rates]
        wrong = 0.3
        transient = 0.1
        [latency]
        kind = "exponential"
        mean_s = 0.2
        """,
    )
    profile = load_profile(path)
    assert profile.name == "liars"
    assert profile.rate("wrong") == 0.3
    assert profile.rate("hang") == 0.0
    assert profile.latency == Latency("exponential", 0.2)
    assert profile.repair_success == 0.25


def test_json_profile_with_a_name(tmp_path: Path) -> None:
    data = {"name": "slow", "rates": {"timeout": 0.5}, "latency": {"kind": "fixed", "mean_s": 2}}
    profile = load_profile(write(tmp_path, "p.json", json.dumps(data)))
    assert (profile.name, profile.rate("timeout"), profile.latency.mean_s) == ("slow", 0.5, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rates]\nexplode = 0.1", "unknown fault 'explode'"),
        ("[rates]\ntransient = 1.5", "rate of 'transient' is 1.5"),
        ("[rates]\ntransient = -0.1", "must be a number in [0, 1]"),
        ('[rates]\ntransient = "often"', "must be a number in [0, 1]"),
        ("[rates]\ntransient = 0.6\ntimeout = 0.5", "rates sum to 1.1"),
        ("speed = 3", "unknown keys ['speed']"),
        ('[latency]\nkind = "gamma"', "latency kind 'gamma'"),
        ("[latency]\nmean_s = -1", "mean_s must be a number >= 0"),
        ("repair_success = 2", "repair_success must be in [0, 1]"),
        ("[rates\n", "not valid toml"),
    ],
)
def test_bad_profile_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert message in str(caught.value)
    assert path in str(caught.value)


def test_unknown_profile_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="none, flaky, hostile"):
        load_profile("chaotic")


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fault profile file"):
        load_profile(str(tmp_path / "absent.toml"))


def test_choose_walks_the_cumulative_rates() -> None:
    profile = FaultProfile("p", {"transient": 0.1, "hang": 0.2})
    assert profile.choose(0.05) == "transient"
    assert profile.choose(0.15) == "hang"  # hang comes after transient in FAULTS order
    assert profile.choose(0.31) is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0.3", Latency("fixed", 0.3)),
        ("fixed:0", Latency("fixed", 0.0)),
        ("exponential:0.2", Latency("exponential", 0.2)),
        ("lognormal:0.3", Latency("lognormal", 0.3)),
        ("lognormal:0.3:1.2", Latency("lognormal", 0.3, 1.2)),
    ],
)
def test_latency_specs(spec: str, expected: Latency) -> None:
    assert Latency.parse(spec) == expected
    assert Latency.parse(expected.spec()) == expected


@pytest.mark.parametrize("spec", ["fast", "gamma:1", "fixed:1:2", "lognormal:a"])
def test_bad_latency_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        Latency.parse(spec)


@pytest.mark.parametrize(
    "latency",
    [Latency("fixed", 0.3), Latency("exponential", 0.3), Latency("lognormal", 0.3, 0.8)],
)
def test_latency_distributions_have_the_configured_mean(latency: Latency) -> None:
    rng = random.Random(1)
    draws = [latency.draw(rng) for _ in range(20_000)]
    assert min(draws) >= 0
    assert abs(sum(draws) / len(draws) - 0.3) < 0.3 * 0.05
