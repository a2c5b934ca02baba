"""POST /v1/projects: a project in the paper's format becomes one task with its plan.

The project is validated whole (`load_project`: duplicate ids, unknown
dependencies, cycles, same-file writes without a dependency) and answered 422
naming every problem; a valid one goes through exactly the path of
POST /v1/tasks, as a task whose `plan` is the project's steps, so the planner
skips LLM planning. Body: the project object, optionally with `task_id`,
`mode` (synod | central | claim, default synod), `agents` (the team's size:
required by central and claim, a cap on steps in flight in synod mode), and
`tests` ({path: pytest file}, which the reviewers run on the task's workspace
before they accept its answer; checked as TaskSubmitted.tests is, so a bad path
is answered 422 by the task route).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from synod.core.plan.dag import PlanError, load_project
from synod.core.plan.teampolicy import TEAM_MODES, TeamLabelError, team_of

Handler = Callable[[web.Request], Awaitable[web.Response]]


class _Rebodied:
    """The request as POST /v1/tasks reads it (body and headers), with the task as body."""

    def __init__(self, request: web.Request, body: bytes) -> None:
        self.headers = request.headers
        self._body = body

    async def read(self) -> bytes:
        return self._body


def project_handler(submit_task: Handler) -> Handler:
    async def submit_project(request: web.Request) -> web.Response:
        try:
            doc = json.loads(await request.read())
        except (ValueError, RecursionError) as exc:
            return _error(400, "malformed_json", f"the body is not valid JSON: {exc}", [])
        if not isinstance(doc, dict):
            return _error(422, "invalid", "a project is a JSON object with a 'tasks' list", [])
        try:
            plan = load_project(doc)
        except PlanError as exc:
            problems = [
                {"kind": p.kind, "steps": list(p.steps), "problem": p.message} for p in exc.problems
            ]
            return _error(422, "invalid_project", str(exc), problems)
        labels = {"team.project": plan.name[:200]}
        team = _team_labels(doc)
        if isinstance(team, web.Response):
            return team
        labels.update(team)
        task: dict[str, Any] = {
            "goal": (plan.description or plan.name or "project")[:4_000],
            "plan": [s.model_dump(mode="json") for s in plan],
            "labels": labels,
        }
        if "task_id" in doc:
            task["task_id"] = doc["task_id"]
        if doc.get("tests") is not None:
            task["tests"] = doc["tests"]
        return await submit_task(_Rebodied(request, json.dumps(task).encode()))  # type: ignore[arg-type]

    return submit_project


def _team_labels(doc: dict[str, Any]) -> dict[str, str] | web.Response:
    """The labels that make the planner run the project as a team, or a 422 saying why not."""
    mode, agents = doc.get("mode", "synod"), doc.get("agents")
    if mode not in TEAM_MODES:
        message = f"'mode' must be one of {', '.join(TEAM_MODES)}, got {mode!r}"
        return _error(422, "invalid", message, [])
    if agents is not None and (
        not isinstance(agents, int) or isinstance(agents, bool) or not 1 <= agents <= 1_000
    ):
        message = f"'agents' must be an integer from 1 to 1000, got {agents!r}"
        return _error(422, "invalid", message, [])
    labels = {"team.mode": str(mode)}
    if agents is not None:
        labels["team.agents"] = str(agents)
    try:
        team_of(labels)  # the planner's own reading of the labels
    except TeamLabelError as exc:
        return _error(422, "invalid", f"{exc} (set 'agents' in the body)", [])
    return labels


def _error(status: int, code: str, message: str, problems: list[dict[str, Any]]) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": {"problems": problems}}}
    return web.json_response(body, status=status)
