"""The worker's retry settings: SYNOD_RETRY_* text to checked retry tiers."""

from __future__ import annotations

import pytest

from synod.errors import ConfigError
from synod.roles.worker.settings import RetrySettings, parse_delays, parse_limits


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1,x", "expected seconds separated by commas"),
        ("5,1", "must not decrease"),
        ("0,1", "must all be > 0"),
    ],
)
def test_bad_delays_name_the_setting_and_the_fix(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_delays(text)


def test_settings_parse_and_bound_the_tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNOD_RETRY_DELAYS_S", "0.2, 0.5")
    monkeypatch.setenv("SYNOD_RETRY_LIMITS", "deadline=1")
    tiers = RetrySettings().tiers(3)
    assert tiers is not None
    assert (tiers.delays_s, dict(tiers.limits)) == ((0.2, 0.5), {"deadline": 1})
    monkeypatch.setenv("SYNOD_RETRY_DELAYS_S", "1,2,3,4")
    with pytest.raises(ConfigError, match="3 retry topics per role"):
        RetrySettings().tiers(3)
    monkeypatch.setenv("SYNOD_RETRY_DELAYS_S", "")
    assert RetrySettings().tiers(3) is None  # retry topics off


def test_bad_limits_say_the_expected_form() -> None:
    assert parse_limits(" deadline=1 , rate_limited=2 ") == {"deadline": 1, "rate_limited": 2}
    with pytest.raises(ConfigError, match="REASON=N"):
        parse_limits("deadline")
