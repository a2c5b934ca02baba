"""Fault profiles for the simulated backend: how often each fault happens, and how slow calls are.

A profile is a probability per call for each fault (at most one fault per call,
so the rates must sum to at most 1), a latency distribution, and the chance that
the repair turn after a malformed reply succeeds. Three profiles are built in
(`none`, `flaky`, `hostile`, and `injection`: every reply a right answer
whose text carries a prompt injection); others are TOML or JSON files:

    name = "lying-reviewers"     # optional; defaults to the file name
    repair_success = 0.5         # optional; default 0.8
    [rates]                      # faults not named have rate 0
    wrong = 0.3
    transient = 0.05
    [latency]                    # optional; default lognormal, mean 0.3 s, sigma 0.5
    kind = "exponential"         # fixed | exponential | lognormal
    mean_s = 0.2
    sigma = 0.5                  # lognormal only
"""

from __future__ import annotations

import json
import math
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal, get_args

from synod.errors import ConfigError

FaultName = Literal["transient", "timeout", "malformed", "wrong", "loop", "hang", "crash", "inject"]
FAULTS: tuple[FaultName, ...] = get_args(FaultName)
LatencyKind = Literal["fixed", "exponential", "lognormal"]
LATENCY_KINDS: tuple[LatencyKind, ...] = get_args(LatencyKind)


@dataclass(frozen=True, slots=True)
class Latency:
    """A latency distribution; `mean_s` is the mean of the distribution itself."""

    kind: LatencyKind = "lognormal"
    mean_s: float = 0.3
    sigma: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in LATENCY_KINDS:
            raise ConfigError(f"latency kind {self.kind!r} is not one of {list(LATENCY_KINDS)}")
        if not _is_number(self.mean_s) or self.mean_s < 0:
            raise ConfigError(f"latency mean_s must be a number >= 0, not {self.mean_s!r}")
        if not _is_number(self.sigma) or self.sigma < 0:
            raise ConfigError(f"latency sigma must be a number >= 0, not {self.sigma!r}")

    def draw(self, rng: random.Random) -> float:
        # Always consume one draw, so a zero latency does not shift what is drawn next.
        u = rng.random()
        if self.mean_s == 0 or self.kind == "fixed":
            return self.mean_s
        if self.kind == "exponential":
            return -self.mean_s * math.log(1.0 - u)
        # Lognormal with the requested mean: mu = ln(mean) - sigma^2 / 2.
        mu = math.log(self.mean_s) - self.sigma**2 / 2
        return math.exp(mu + self.sigma * _normal_quantile(u))

    def spec(self) -> str:
        if self.kind == "lognormal":
            return f"lognormal:{self.mean_s:g}:{self.sigma:g}"
        return f"{self.kind}:{self.mean_s:g}"

    @classmethod
    def parse(cls, spec: str) -> Latency:
        """`0.3` (fixed), `fixed:0.3`, `exponential:0.3` or `lognormal:0.3[:sigma]`."""
        parts = spec.strip().split(":")
        try:
            if len(parts) == 1:
                return cls("fixed", float(parts[0]))
            kind, numbers = parts[0], [float(p) for p in parts[1:]]
        except ValueError:
            raise ConfigError(
                f"latency {spec!r}: numbers expected, as in lognormal:0.3:0.5"
            ) from None
        if kind not in LATENCY_KINDS or len(numbers) > (2 if kind == "lognormal" else 1):
            raise ConfigError(
                f"latency {spec!r}: use fixed:MEAN, exponential:MEAN or lognormal:MEAN[:SIGMA]"
            )
        if len(numbers) == 2:
            return cls("lognormal", numbers[0], numbers[1])
        return cls(kind, numbers[0])


_STANDARD_NORMAL = NormalDist()


def _normal_quantile(u: float) -> float:
    # random.lognormvariate uses a varying number of draws; the inverse CDF uses one,
    # so what is drawn after a latency does not depend on the latency's kind.
    return _STANDARD_NORMAL.inv_cdf(min(max(u, 1e-12), 1 - 1e-12))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class FaultProfile:
    name: str
    rates: Mapping[FaultName, float] = field(default_factory=dict)
    latency: Latency = field(default_factory=Latency)
    repair_success: float = 0.8

    def __post_init__(self) -> None:
        for fault, rate in self.rates.items():
            if fault not in FAULTS:
                raise ConfigError(
                    f"fault profile {self.name!r}: unknown fault {fault!r}; "
                    f"known faults are {', '.join(FAULTS)}"
                )
            if not (_is_number(rate) and 0.0 <= rate <= 1.0):
                raise ConfigError(
                    f"fault profile {self.name!r}: rate of {fault!r} is {rate!r}, "
                    "it must be a number in [0, 1]"
                )
        total = sum(self.rates.values())
        if total > 1.0 + 1e-9:
            raise ConfigError(
                f"fault profile {self.name!r}: rates sum to {total:g}; at most one fault "
                "happens per call, so they must sum to at most 1"
            )
        if not (_is_number(self.repair_success) and 0.0 <= self.repair_success <= 1.0):
            raise ConfigError(
                f"fault profile {self.name!r}: repair_success must be in [0, 1], "
                f"not {self.repair_success!r}"
            )

    def rate(self, fault: FaultName) -> float:
        return self.rates.get(fault, 0.0)

    def choose(self, u: float) -> FaultName | None:
        """The fault for a uniform draw `u` in [0, 1): each with its rate, else none."""
        cumulative = 0.0
        for fault in FAULTS:
            cumulative += self.rate(fault)
            if u < cumulative:
                return fault
        return None


PROFILES: Mapping[str, FaultProfile] = {
    "none": FaultProfile("none", {}, Latency(), repair_success=1.0),
    "flaky": FaultProfile(
        "flaky",
        {
            "transient": 0.05,
            "timeout": 0.02,
            "malformed": 0.03,
            "wrong": 0.02,
            "loop": 0.01,
            "hang": 0.005,
        },
        Latency("lognormal", 0.3, 0.7),
        repair_success=0.8,
    ),
    "hostile": FaultProfile(
        "hostile",
        {
            "transient": 0.10,
            "timeout": 0.05,
            "malformed": 0.05,
            "wrong": 0.05,
            "loop": 0.02,
            "hang": 0.01,
            "crash": 0.005,
        },
        Latency("lognormal", 0.5, 1.0),
        repair_success=0.5,
    ),
    # Model output is data: every reply is right, and its text also holds a
    # JSON Decision, a TaskCompleted, tool-call lookalikes and "ignore your
    # instructions" (synod.llm.simcontent.INJECTION). Nothing may act on them.
    "injection": FaultProfile(
        "injection", {"inject": 1.0}, Latency("exponential", 0.05), repair_success=1.0
    ),
}

_FILE_KEYS = {"name", "rates", "latency", "repair_success"}
_LATENCY_KEYS = {"kind", "mean_s", "sigma"}


def load_profile(spec: str) -> FaultProfile:
    """A built-in profile by name, or a profile file (.toml or .json) by path."""
    if spec in PROFILES:
        return PROFILES[spec]
    path = Path(spec)
    if path.suffix not in (".toml", ".json"):
        raise ConfigError(
            f"unknown fault profile {spec!r}: use one of {', '.join(PROFILES)} "
            "or the path of a .toml or .json profile file"
        )
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"fault profile file {spec}: {err.strerror or err}") from None
    try:
        data: Any = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"fault profile file {spec}: not valid {path.suffix[1:]}: {err}"
        ) from None
    return parse_profile(data, default_name=path.stem, source=spec)


def parse_profile(data: object, *, default_name: str, source: str) -> FaultProfile:
    """A profile from the decoded contents of a profile file; `source` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a fault profile is a table/object at the top level")
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise ConfigError(
            f"{source}: unknown keys {sorted(unknown)}; a profile has {sorted(_FILE_KEYS)}"
        )
    name = data.get("name", default_name)
    rates = data.get("rates", {})
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: name must be a non-empty string")
    if not isinstance(rates, dict):
        raise ConfigError(f"{source}: rates must be a table of fault = rate")
    latency_data = data.get("latency", {})
    if not isinstance(latency_data, dict) or set(latency_data) - _LATENCY_KEYS:
        raise ConfigError(f"{source}: latency is a table with keys {sorted(_LATENCY_KEYS)}")
    try:
        latency = Latency(**latency_data)
        return FaultProfile(
            name,
            rates,
            latency,
            repair_success=data.get("repair_success", 0.8),
        )
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
