"""`synod up --replicas` specs: what a user may ask for, and clear refusals."""

from __future__ import annotations

import pytest

from synod.dev.localrun import ROLES, parse_replicas
from synod.errors import ConfigError


def test_defaults_and_overrides() -> None:
    assert parse_replicas([]) == ROLES
    assert parse_replicas(["coder=4", "reviewer=5"])["coder"] == 4


@pytest.mark.parametrize("bad", ["coder", "painter=2", "coder=x", "reviewer=0", "gateway=2"])
def test_bad_specs_say_what_to_fix(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_replicas([bad])
