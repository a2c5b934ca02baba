"""Every series the chart's alert rules and dashboards name is one the code registers.

A renamed metric fails here, before an alert silently stops firing. (The e2e
tracing test holds the same expressions to the /metrics pages of a live run.)
"""

from __future__ import annotations

from tests.promql import alert_expressions, dashboard_expressions, names_in, registered_names


def test_alert_rules_name_only_registered_series() -> None:
    registered = registered_names()
    for alert, expr in alert_expressions().items():
        named = names_in([expr])
        assert named, f"{alert}: names no synod_* series"
        assert named <= registered, f"{alert}: {sorted(named - registered)} are not registered"


def test_dashboards_name_only_registered_series() -> None:
    registered = registered_names()
    panels = dashboard_expressions()
    assert len(panels) >= 10
    for panel, expr in panels.items():
        missing = names_in([expr]) - registered
        assert not missing, f"{panel}: {sorted(missing)} are not registered"


def test_the_paged_metrics_are_among_them() -> None:
    # What the issue asks an operator to be able to page on.
    paged = {
        "synod_consumer_lag_messages",
        "synod_task_duration_seconds_bucket",
        "synod_transport_hop_latency_seconds_bucket",
        "synod_step_duration_seconds_bucket",
        "synod_transport_handler_errors_total",
        "synod_llm_breaker_state",
        "synod_llm_tokens_total",
        "synod_llm_cost_usd_total",
        "synod_reviewer_votes_total",
        "synod_consensus_decisions_total",
        "synod_dead_letters_total",
        "synod_supervisor_suspects",
    }
    assert paged <= registered_names()
    assert paged <= names_in([*alert_expressions().values(), *dashboard_expressions().values()])
