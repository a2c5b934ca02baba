"""POST /v1/projects: a project becomes one task carrying its plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synod.wire import TaskSubmitted

from .test_api import Gateway, make_gateway  # noqa: F401  (the fixture)

PROJECT = Path(__file__).parents[3] / "e2e" / "data" / "p09.json"


async def _post(gateway: Gateway, doc: Any) -> tuple[int, dict[str, Any]]:
    response = await gateway.client.post("/v1/projects", json=doc)
    return response.status, await response.json()


async def test_a_project_is_submitted_as_a_task_with_its_plan(make_gateway: Any) -> None:  # noqa: F811
    gateway = await make_gateway()
    doc = {**json.loads(PROJECT.read_text()), "task_id": "proj-1"}
    status, body = await _post(gateway, doc)
    assert status == 202, body
    assert body["task_id"] == "proj-1"
    [(_, envelope)] = gateway.publisher.sent
    assert isinstance(envelope.body, TaskSubmitted)
    plan = envelope.body.plan or []
    assert [s.step_id for s in plan] == [t["id"] for t in doc["tasks"]]
    assert plan[1].depends_on == ["task-1"]
    assert plan[1].files == ["safe_add.py"]


async def test_a_bad_project_is_422_naming_each_problem(make_gateway: Any) -> None:  # noqa: F811
    gateway = await make_gateway()
    doc = {
        "tasks": [
            {"id": "a", "files": ["x.py"]},
            {"id": "a", "files": ["y.py"]},
            {"id": "b", "dependencies": ["ghost"], "files": ["z.py"]},
        ]
    }
    status, body = await _post(gateway, doc)
    assert status == 422
    kinds = {p["kind"] for p in body["error"]["details"]["problems"]}
    assert {"duplicate_id", "unknown_dependency"} <= kinds
    assert gateway.publisher.sent == []


async def test_a_project_s_tests_travel_with_its_task(make_gateway: Any) -> None:  # noqa: F811
    gateway = await make_gateway()
    tests = {"tests/test_add.py": "from safe_add import *\n\n\ndef test_x():\n    pass\n"}
    doc = {**json.loads(PROJECT.read_text()), "task_id": "proj-2", "tests": tests}
    status, body = await _post(gateway, doc)
    assert status == 202, body
    [(_, envelope)] = gateway.publisher.sent
    assert envelope.body.tests == tests


async def test_a_test_path_outside_the_workspace_is_422(make_gateway: Any) -> None:  # noqa: F811
    gateway = await make_gateway()
    doc = {**json.loads(PROJECT.read_text()), "tests": {"../test_evil.py": "x = 1\n"}}
    status, body = await _post(gateway, doc)
    assert status == 422, body
    assert "must not contain '..'" in json.dumps(body)
    assert gateway.publisher.sent == []


async def test_a_project_runs_as_the_team_the_body_names(make_gateway: Any) -> None:  # noqa: F811
    gateway = await make_gateway()
    doc = {**json.loads(PROJECT.read_text()), "mode": "claim", "agents": 3}
    status, body = await _post(gateway, doc)
    assert status == 202, body
    [(_, envelope)] = gateway.publisher.sent
    assert envelope.body.labels["team.mode"] == "claim"
    assert envelope.body.labels["team.agents"] == "3"


async def test_a_bad_team_is_422_saying_what_to_set(make_gateway: Any) -> None:  # noqa: F811
    gateway = await make_gateway()
    project = json.loads(PROJECT.read_text())
    for extra, says in [
        ({"mode": "anarchy"}, "'mode' must be one of"),
        ({"mode": "central"}, "needs team.agents"),
        ({"agents": 0}, "'agents' must be an integer"),
        ({"agents": "3"}, "'agents' must be an integer"),
    ]:
        status, body = await _post(gateway, {**project, **extra})
        assert status == 422, (extra, body)
        assert says in body["error"]["message"], (extra, body)
    assert gateway.publisher.sent == []
