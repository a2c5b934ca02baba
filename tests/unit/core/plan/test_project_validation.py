"""Each bad project, in the paper's format, is rejected alone with an error naming the steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synod.core.plan import PlanError, load_project


def task(tid: str, deps: list[str] | None = None, files: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": tid,
        "title": tid,
        "description": "",
        "dependencies": deps or [],
        "files": files if files is not None else [f"{tid}.py"],
        "priority": 1,
    }


def rejected(tasks: list[dict[str, Any]]) -> PlanError:
    with pytest.raises(PlanError) as info:
        load_project({"project": "bad", "tasks": tasks})
    return info.value


def test_a_good_project_loads() -> None:
    plan = load_project({"project": "ok", "tasks": [task("t1"), task("t2", ["t1"])]})
    assert plan.ids == ("t1", "t2")


def test_duplicate_ids() -> None:
    err = rejected([task("t1"), task("t2"), task("t1", files=["other.py"])])
    assert [(p.kind, p.steps) for p in err.problems] == [("duplicate_id", ("t1",))]
    assert "duplicate step id 't1'" in str(err)


def test_unknown_dependencies() -> None:
    err = rejected([task("t1"), task("t2", ["t1", "t9"])])
    assert [(p.kind, p.steps) for p in err.problems] == [("unknown_dependency", ("t2", "t9"))]
    assert "step 't2' depends on unknown step 't9'" in str(err)


def test_cycles() -> None:
    err = rejected([task("t1", ["t3"]), task("t2", ["t1"]), task("t3", ["t2"]), task("t4")])
    assert [p.kind for p in err.problems] == ["cycle"]
    assert set(err.problems[0].steps) == {"t1", "t2", "t3"}
    assert "dependency cycle: t1 -> t3 -> t2 -> t1" in str(err)


def test_two_writers_of_one_file_without_a_dependency_path() -> None:
    # t2 and t3 both follow t1 but not each other: their writes of lib.py could race.
    err = rejected([task("t1"), task("t2", ["t1"], ["lib.py"]), task("t3", ["t1"], ["./lib.py"])])
    assert [(p.kind, p.steps) for p in err.problems] == [("file_conflict", ("t2", "t3"))]
    assert "steps 't2' and 't3' both write 'lib.py'" in str(err)


def test_two_writers_on_one_path_through_the_graph_are_fine() -> None:
    plan = load_project(
        {
            "tasks": [
                task("t1", files=["lib.py"]),
                task("t2", ["t1"]),
                task("t3", ["t2"], ["lib.py"]),
            ]
        }
    )
    assert len(plan) == 3


def test_a_bad_project_file_is_rejected_from_disk_too(tmp_path: Path) -> None:
    path = tmp_path / "project.json"
    path.write_text(json.dumps({"tasks": [task("t1", ["t1"])]}), encoding="utf-8")
    with pytest.raises(PlanError, match="step 't1' depends on itself"):
        load_project(path)
