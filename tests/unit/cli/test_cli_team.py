"""`synod team run` refuses bad projects and modes before touching Kafka."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from synod.cli.main import app
from synod.core.plan.dag import load_project

RUNNER = CliRunner()


def _task(
    tid: str, deps: list[str] | None = None, files: list[str] | None = None
) -> dict[str, Any]:
    return {"id": tid, "title": tid, "dependencies": deps or [], "files": files or [f"{tid}.py"]}


def _run(tmp_path: Path, tasks: list[Any], *extra: str) -> Any:
    path = tmp_path / "project.json"
    path.write_text(json.dumps({"project": "t", "tasks": tasks}))
    # An unreachable broker: any test that got past validation would fail loudly.
    return RUNNER.invoke(app, ["team", "run", str(path), "-b", "127.0.0.1:1", *extra])


@pytest.mark.parametrize(
    ("tasks", "named"),
    [
        ([_task("a"), _task("a")], "a"),
        ([_task("a", ["ghost"])], "ghost"),
        ([_task("a", ["b"]), _task("b", ["a"])], "cycle"),
        ([_task("a", files=["x.py"]), _task("b", files=["x.py"])], "x.py"),
    ],
    ids=["duplicate-id", "unknown-dependency", "cycle", "same-file-no-dependency"],
)
def test_a_bad_project_is_refused_with_the_problem_named(
    tmp_path: Path, tasks: list[Any], named: str
) -> None:
    result = _run(tmp_path, tasks)
    assert result.exit_code == 2
    assert named in result.output


@pytest.mark.parametrize("mode", ["central", "claim", "synod"])
def test_every_mode_runs_over_kafka(mode: str) -> None:
    from synod.cli.teamrun import check_mode, submission

    check_mode(mode)  # no error: all three are scheduled by the planner
    plan = load_project({"project": "t", "tasks": [_task("a")]})
    labels = submission(plan, "t1", "cli", 3, mode=mode).body.labels
    assert labels["team.mode"] == mode
    assert labels["team.agents"] == "3"


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    result = _run(tmp_path, [_task("a")], "--mode", "anarchy")
    assert result.exit_code == 2
    assert "unknown mode" in result.output


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    result = RUNNER.invoke(app, ["team", "run", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "nope.json" in result.output


def test_a_project_whose_tests_escape_the_workspace_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "project.json"
    doc = {"project": "t", "tasks": [_task("a")], "tests": {"../test_a.py": "x = 1\n"}}
    path.write_text(json.dumps(doc))
    result = RUNNER.invoke(app, ["team", "run", str(path), "-b", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "'tests': test path '../test_a.py' must not contain '..'" in result.output
