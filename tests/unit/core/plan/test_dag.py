"""The plan DAG: validation names every problem, graph answers are right and deterministic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.plan import Plan, PlanError, load_project
from synod.errors import SynodError
from synod.wire import PlanStep, TaskSubmitted

PAPER = Path("/work/shared/paper/tasks")
PROJECTS = sorted(PAPER.glob("*/p*.json"))


def plan(*steps: tuple[str, list[str]], files: dict[str, list[str]] | None = None) -> Plan:
    files = files or {}
    return Plan.from_steps(
        {"step_id": s, "depends_on": d, "files": files.get(s, [f"{s}.py"])} for s, d in steps
    )


def problems_of(steps: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(PlanError) as info:
        Plan.from_steps(steps)
    return [p.message for p in info.value.problems]


# ---------------------------------------------------------------- projects


def test_the_nine_paper_projects_are_found() -> None:
    assert len(PROJECTS) == 9


@pytest.mark.parametrize("path", PROJECTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_paper_project_loads(path: Path) -> None:
    raw = json.loads(path.read_text())
    p = load_project(path)
    assert p.ids == tuple(t["id"] for t in raw["tasks"])
    assert p.name == raw["project"]
    assert all(s.role == "coder" for s in p)
    first = raw["tasks"][1]
    assert p.step(first["id"]).depends_on == first["dependencies"]
    assert p.step(first["id"]).files == first["files"]
    assert load_project(raw) == p


def test_example_task_is_rejected_for_same_file_writes_without_a_dependency() -> None:
    with pytest.raises(PlanError) as info:
        load_project(PAPER / "example_task.json")
    assert str(info.value) == (
        "invalid plan: 2 problems:\n"
        "- steps 'task-1' and 'task-2' both write 'math_utils.py'"
        " with no dependency path between them\n"
        "- steps 'task-2' and 'task-4' both write 'math_utils.py'"
        " with no dependency path between them"
    )
    assert [p.steps for p in info.value.problems] == [("task-1", "task-2"), ("task-2", "task-4")]
    assert info.value.error_class == "permanent"
    assert isinstance(info.value, SynodError)


def test_the_example_becomes_valid_once_the_writers_are_ordered() -> None:
    raw = json.loads((PAPER / "example_task.json").read_text())
    raw["tasks"][1]["dependencies"] = ["task-1"]
    raw["tasks"][3]["dependencies"] = ["task-2"]
    p = load_project(raw)
    assert p.topological_order() == ("task-1", "task-2", "task-3", "task-4", "task-5")


def test_a_wire_plan_becomes_a_plan() -> None:
    task = TaskSubmitted(
        goal="g",
        plan=[PlanStep(step_id="a"), PlanStep(step_id="b", depends_on=["a"], role="reviewer")],
    )
    assert task.plan is not None
    p = Plan.from_steps(task.plan)
    assert p.topological_order() == ("a", "b")
    assert p.step("b").role == "reviewer"


# ---------------------------------------------------------------- validation


def test_every_problem_is_reported_at_once_with_names() -> None:
    messages = problems_of(
        [
            {"step_id": "a", "depends_on": ["c"], "files": ["x.py"]},
            {"step_id": "b", "depends_on": ["a", "ghost"]},
            {"step_id": "c", "depends_on": ["b"]},
            {"step_id": "a"},
            {"step_id": "d", "depends_on": ["d"], "files": ["./x.py"]},
            {"step_id": "e", "files": ["../outside.py", "/etc/passwd"]},
        ]
    )
    assert messages == [
        "duplicate step id 'a' (#1 and #4)",
        "step 'b' depends on unknown step 'ghost'",
        "step 'd' depends on itself",
        "dependency cycle: a -> c -> b -> a (each step depends on the next)",
        "step 'e' writes '../outside.py', which is not a relative path inside the project",
        "step 'e' writes '/etc/passwd', which is not a relative path inside the project",
        "steps 'a' and 'd' both write 'x.py' with no dependency path between them",
    ]


def test_an_empty_plan_is_rejected() -> None:
    assert problems_of([]) == ["the plan has no steps"]


def test_malformed_steps_are_named() -> None:
    messages = problems_of([{"step_id": "a", "depends_on": "b"}, {"title": "no id"}])
    assert messages[0].startswith("step 'a': depends_on:")
    assert messages[1].startswith("step #2: step_id:")


@pytest.mark.parametrize("project", [[], {"tasks": "no"}, {"tasks": [1]}, {"tasks": [{"id": ""}]}])
def test_malformed_projects_raise_plan_error(project: Any) -> None:
    with pytest.raises(PlanError):
        load_project(project if isinstance(project, dict) else {"tasks": project})


def test_a_project_file_that_is_not_json(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text("{nope")
    with pytest.raises(PlanError, match="not JSON"):
        load_project(bad)


def test_two_cycles_are_both_named() -> None:
    messages = problems_of(
        [
            {"step_id": "a", "depends_on": ["b"]},
            {"step_id": "b", "depends_on": ["a"]},
            {"step_id": "c", "depends_on": ["e"]},
            {"step_id": "d", "depends_on": ["c"]},
            {"step_id": "e", "depends_on": ["d"]},
        ]
    )
    assert messages == [
        "dependency cycle: a -> b -> a (each step depends on the next)",
        "dependency cycle: c -> e -> d -> c (each step depends on the next)",
    ]


def test_same_file_writers_on_one_chain_are_fine_in_either_direction() -> None:
    p = plan(("a", []), ("b", ["a"]), ("c", ["b"]), files={"a": ["f"], "b": [], "c": ["f"]})
    assert p.topological_order() == ("a", "b", "c")


def test_a_deep_chain_does_not_hit_the_recursion_limit() -> None:
    n = 5000
    p = plan(*[(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(n)])
    assert p.longest_chain().length == n
    cyc = [{"step_id": f"s{i}", "depends_on": [f"s{(i - 1) % n}"]} for i in range(n)]
    assert problems_of(cyc)[0].startswith("dependency cycle: s0 -> s4999 -> s4998")


def test_the_plan_does_not_change_when_the_callers_steps_do() -> None:
    step = PlanStep(step_id="a", files=["x"])
    p = Plan.from_steps([step, PlanStep(step_id="b", depends_on=["a"])])
    step.depends_on.append("b")  # would be a cycle if the plan shared the list
    assert p.step("a").depends_on == []
    assert p.dependents("a") == ("b",)


# ---------------------------------------------------------------- graph answers


DIAMOND = plan(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"]), ("e", []))


def test_topological_order_prefers_plan_order_among_ready_steps() -> None:
    assert DIAMOND.topological_order() == ("a", "b", "c", "d", "e")
    # b comes first in the plan, so it goes as soon as a, ahead of c.
    p = plan(("b", ["a"]), ("a", []), ("c", []))
    assert p.topological_order() == ("a", "b", "c")


def test_ready_steps() -> None:
    assert DIAMOND.ready(set()) == ("a", "e")
    assert DIAMOND.ready({"a"}) == ("b", "c", "e")
    assert DIAMOND.ready({"a", "b"}) == ("c", "e")
    assert DIAMOND.ready({"a", "b", "c", "e"}) == ("d",)
    assert DIAMOND.ready(set(DIAMOND.ids)) == ()


def test_longest_chain_by_count_and_by_duration() -> None:
    chain = DIAMOND.longest_chain()
    assert (chain.steps, chain.length) == (("a", "b", "d"), 3.0)
    weighted = DIAMOND.longest_chain({"a": 1, "b": 1, "c": 5, "d": 1, "e": 2})
    assert (weighted.steps, weighted.length) == (("a", "c", "d"), 7.0)
    alone = DIAMOND.longest_chain({"a": 1, "b": 1, "c": 1, "d": 1, "e": 9})
    assert (alone.steps, alone.length) == (("e",), 9.0)


def test_bottom_levels_and_rank() -> None:
    d = {"a": 1, "b": 1, "c": 5, "d": 1, "e": 2}
    assert DIAMOND.bottom_levels(d) == {"a": 7, "b": 2, "c": 6, "d": 1, "e": 2}
    rank = DIAMOND.critical_path_rank(d)
    assert sorted(rank, key=rank.__getitem__) == ["a", "c", "b", "e", "d"]


def test_priority_breaks_ties_in_rank_but_never_overrides_the_critical_path() -> None:
    p = Plan.from_steps(
        [
            {"step_id": "a", "priority": 5},
            {"step_id": "b", "priority": 1},
            {"step_id": "c", "priority": 9},
            {"step_id": "d", "depends_on": ["c"], "priority": 9},
        ]
    )
    rank = p.critical_path_rank()
    assert sorted(rank, key=rank.__getitem__) == ["c", "b", "a", "d"]


def test_durations_must_cover_the_plan() -> None:
    with pytest.raises(ValueError, match="missing"):
        DIAMOND.total_work({"a": 1})
    with pytest.raises(ValueError, match="invalid"):
        DIAMOND.total_work({"a": 1, "b": 1, "c": 1, "d": 1, "e": -1})


@st.composite
def dags(draw: st.DrawFn) -> Plan:
    n = draw(st.integers(1, 14))
    steps: list[dict[str, Any]] = []
    for i in range(n):
        deps = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        steps.append({"step_id": f"s{i}", "depends_on": [f"s{j}" for j in sorted(deps)]})
    order = draw(st.permutations(steps))
    return Plan.from_steps(order)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(dags())
def test_topological_order_respects_every_dependency(p: Plan) -> None:
    order = p.topological_order()
    assert sorted(order) == sorted(p.ids)
    where = {s: i for i, s in enumerate(order)}
    for s in p.ids:
        assert all(where[d] < where[s] for d in p.depends_on(s))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(dags())
def test_the_longest_chain_is_a_chain_and_no_path_is_longer(p: Plan) -> None:
    chain = p.longest_chain()
    assert not p.depends_on(chain.steps[0])
    assert not p.dependents(chain.steps[-1])
    for a, b in zip(chain.steps, chain.steps[1:], strict=False):
        assert a in p.depends_on(b)
    # Longest path by brute force: depth of each step in topological order.
    depth: dict[str, int] = {}
    for s in p.topological_order():
        depth[s] = 1 + max((depth[d] for d in p.depends_on(s)), default=0)
    assert chain.length == len(chain.steps) == max(depth.values())
