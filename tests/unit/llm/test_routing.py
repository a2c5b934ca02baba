"""Model routing: role, step kind and task labels choose the first link of the chain."""

from __future__ import annotations

import pytest

from synod.errors import ConfigError
from synod.llm.routing import Link, RoutingTable, step_kind
from synod.wire.messages import routing_labels


def table(**per_role: str) -> RoutingTable:
    return RoutingTable.build(
        "anthropic",
        "claude-sonnet-5-5",
        {"coder": "anthropic:claude-opus-5-5", "coder.merge": "openai:gpt-4.1"},
        per_role,
    )


def test_the_most_specific_route_wins() -> None:
    routes = table(researcher="openai:gpt-4.1-mini")
    assert routes.choose("coder", "merge").link == Link("openai", "gpt-4.1")
    assert routes.choose("coder", "revise").link == Link("anthropic", "claude-opus-5-5")
    assert routes.choose("coder").source == "SYNOD_LLM_ROUTING coder"
    assert routes.choose("researcher").source == "SYNOD_MODEL_RESEARCHER"
    assert routes.choose("reviewer").link == Link("anthropic", "claude-sonnet-5-5")
    assert routes.choose("reviewer").source == "default"


def test_a_role_variable_overrides_the_tables_entry_for_the_role() -> None:
    routes = table(coder="claude-haiku-4-5")
    assert routes.choose("coder").link == Link("anthropic", "claude-haiku-4-5")
    assert routes.choose("coder").source == "SYNOD_MODEL_CODER"
    assert routes.choose("coder", "merge").source == "SYNOD_LLM_ROUTING coder.merge"


def test_labels_override_the_table_and_the_step_overrides_labels() -> None:
    routes = table()
    labels = {"model": "sim:any", "model.coder.merge": "openai:gpt-5", "model.coder": "m-coder"}
    assert routes.choose("coder", "merge", labels).link == Link("openai", "gpt-5")
    assert routes.choose("coder", "", labels).source == "label model.coder"
    assert routes.choose("coder", "", labels).link == Link("anthropic", "m-coder")
    assert routes.choose("planner", "", labels).source == "label model"
    step = routes.choose("coder", "merge", labels, model="openai:gpt-4o")
    assert (step.link, step.source) == (Link("openai", "gpt-4o"), "step")


@pytest.mark.parametrize(
    ("routing", "per_role"),
    [({"coders": "x"}, {}), ({"coder.hedge": "x"}, {}), ({"coder": "openai:"}, {})],
)
def test_bad_routing_is_a_config_error_naming_the_setting(
    routing: dict[str, str], per_role: dict[str, str]
) -> None:
    with pytest.raises(ConfigError, match="SYNOD_LLM_ROUTING"):
        RoutingTable.build("anthropic", "m", routing, per_role)


def test_a_bad_routing_label_is_an_error_naming_the_label() -> None:
    with pytest.raises(ConfigError, match=r"label model\.researcher\.deep"):
        table().choose("researcher", "", {"model.researcher.deep": "x"})


def test_step_kinds() -> None:
    assert step_kind("merge:src/app.py", "") == "merge"
    assert step_kind("s1", "revise-2") == "revise"
    assert step_kind("s1", "v2+revise-1") == "revise"
    assert step_kind("s1", "") == ""


def test_only_model_labels_travel_with_steps() -> None:
    labels = {"team.mode": "central", "model": "a", "model.coder": "b", "modelx": "c"}
    assert routing_labels(labels) == {"model": "a", "model.coder": "b"}


def test_the_table_describes_itself_for_synod_config() -> None:
    shown = table(researcher="openai:gpt-4.1-mini").describe()
    assert shown["researcher"] == "openai:gpt-4.1-mini (SYNOD_MODEL_RESEARCHER)"
    assert shown["*"] == "anthropic:claude-sonnet-5-5 (default)"
    assert table().providers() == {"anthropic", "openai"}
