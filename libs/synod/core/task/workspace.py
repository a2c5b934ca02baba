"""The planner as the one authority on its task's workspace: bases, leases, merges.

Each request of a step that writes files says, per file, the version it
builds on: the join of the versions its completed ancestors wrote (computed
from this log: see `synod.core.workspace.writes`), so a rewrite by a later
step is an update, never a false conflict. In `strong` consistency it also
carries a lease token per file, newer than every earlier grant of the file,
so a stale writer of an older grant is fenced off when the workspace is
folded; a hedged copy shares its original's lease (the first result wins;
the fold keeps the winner's write). In `eventual` consistency the planner
checks the workspace before the answer is voted on (`CheckWorkspace`), and
merges each file in conflict with a merge step (a coder gets every sibling
and writes a version based on all of them) before it asks for the vote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synod.core.task.actions import Publish
from synod.core.task.records import fail, publish, request_id
from synod.core.task.state import MAX_MERGE_ROUNDS, MERGE_PREFIX, TaskState
from synod.core.workspace import Sibling, VersionVector, written_version
from synod.ids import derived_id
from synod.wire import Envelope, StepCompleted, StepFailed, StepRequested


def fold(s: TaskState, envelope: Envelope[Any]) -> bool:
    """Fold the workspace side of a message; True if it is a merge step's (no DAG step)."""
    body = envelope.body
    if isinstance(body, StepRequested):
        key = (body.step_id, envelope.attempt)
        if body.base_versions:
            s.ws_bases[key] = {p: dict(v) for p, v in body.base_versions.items()}
        if body.lease_tokens:
            s.ws_tokens[key] = dict(body.lease_tokens)
            for path, token in body.lease_tokens.items():
                s.ws_newest_token[path] = max(token, s.ws_newest_token.get(path, 0))
        s.ws_handed.pop(envelope.message_id, None)
    if not isinstance(body, StepRequested | StepCompleted | StepFailed):
        return False
    if not body.step_id.startswith(MERGE_PREFIX):
        return False
    step_id, attempt = body.step_id, envelope.attempt
    if isinstance(body, StepRequested):
        s.merge_requested[step_id] = max(attempt, s.merge_requested.get(step_id, -1))
    else:
        s.merge_finished[step_id] = max(attempt, s.merge_finished.get(step_id, -1))
        if isinstance(body, StepCompleted):
            s.merges_completed[step_id] = body
    return True


def merging(s: TaskState) -> bool:
    return any(n > s.merge_finished.get(m, -1) for m, n in s.merge_requested.items())


def request(s: TaskState, body: StepRequested, what: str, attempt: int) -> Publish:
    """A plan step's request, told the versions it builds on (and its leases)."""
    action = publish(s, body, what, attempt)
    assert isinstance(action.body, StepRequested)
    body = _with_workspace(s, action.body, action.message_id)
    return Publish(body, action.message_id, action.attempt, action.causes)


def _with_workspace(s: TaskState, body: StepRequested, message_id: str) -> StepRequested:
    if not body.files or body.step_id.startswith(MERGE_PREFIX) or s.dag is None:
        return body
    bases = {path: _base_for(s, body.step_id, path) for path in body.files}
    update: dict[str, Any] = {"base_versions": bases}
    if s.submitted is not None and s.submitted.body.consistency == "strong":
        update["lease_tokens"] = _lease_tokens(s, body, message_id)
    return body.model_copy(update=update)


def _base_for(s: TaskState, step_id: str, path: str) -> dict[str, int]:
    """The join of the versions of `path` this step's completed ancestors wrote."""
    assert s.dag is not None
    base = VersionVector()
    for ancestor in _ancestors(s, step_id):
        if ancestor not in s.completed or path not in s.dag.step(ancestor).files:
            continue
        attempt = s.completed_attempt[ancestor]
        given = s.ws_bases.get((ancestor, attempt), {}).get(path, {})
        base = base.join(written_version(given, request_id(s, ancestor, attempt), path))
    return base.as_dict()


def _ancestors(s: TaskState, step_id: str) -> set[str]:
    assert s.dag is not None
    seen: set[str] = set()
    todo = list(s.dag.depends_on(step_id))
    while todo:
        step = todo.pop()
        if step not in seen:
            seen.add(step)
            todo.extend(s.dag.depends_on(step))
    return seen


def _lease_tokens(s: TaskState, body: StepRequested, message_id: str) -> dict[str, int]:
    """The request's lease per file: the original's for a hedge, else new grants."""
    handed = s.ws_handed.get(message_id)
    if handed is not None:
        return handed  # the same action derived again before it folded back
    original = s.requested.get(body.step_id)
    shared = s.ws_tokens.get((body.step_id, original)) if original is not None else None
    if body.prompt_variant == "hedge" and shared is not None:
        tokens = dict(shared)
    else:
        out = [t for pending in s.ws_handed.values() for t in pending.items()]
        tokens = {}
        for path in body.files:
            newest = max([s.ws_newest_token.get(path, 0)] + [t for p, t in out if p == path])
            tokens[path] = newest + 1
    s.ws_handed[message_id] = tokens
    return tokens


def needs_check(s: TaskState) -> bool:
    """Whether the answer's vote waits for a workspace check: an `eventual` task
    whose steps write files (concurrent writes must be merged before it)."""
    if s.submitted is None or s.submitted.body.consistency != "eventual":
        return False
    return s.dag is not None and any(s.dag.step(x).files for x in s.dag.ids)


def winners(s: TaskState) -> dict[str, str]:
    """Step -> the request id of its winning attempt, as the workspace fold takes it."""
    out = {x: request_id(s, x, a) for x, a in s.completed_attempt.items()}
    for step_id in s.merges_completed:
        n = s.merge_finished[step_id]
        out[step_id] = derived_id(s.task_id, f"merge/{step_id[len(MERGE_PREFIX) :]}/{n}")
    return dict(sorted(out.items()))


def merge_requests(s: TaskState, conflicted: Mapping[str, tuple[Sibling, ...]]) -> list[Publish]:
    """A merge step per file in conflict; the task fails, naming the file and its
    siblings, once a file's merges ran out (never a silent pick)."""
    actions: list[Publish] = []
    for path, siblings in sorted(conflicted.items()):
        step_id = f"{MERGE_PREFIX}{path}"
        attempt = s.merge_requested.get(step_id, -1) + 1
        if attempt >= MAX_MERGE_ROUNDS:
            writes = ", ".join(f"{x.write_id} (step {x.step_id})" for x in siblings)
            why = f"{path} still has concurrent versions after {attempt} merges: {writes}"
            return [fail(s, why, "permanent", step_id)]
        base = VersionVector()
        for sibling in siblings:
            base = base.join(sibling.version)
        body = StepRequested(
            step_id=step_id,
            plan_id=s.plan.plan_id if s.plan else "",
            role="coder",
            title=f"Merge the concurrent versions of {path}",
            instructions=(
                f"{path} was written concurrently: {len(siblings)} versions, none of "
                "which saw the others. Write one version of the file that keeps what "
                "each of them contributes."
            ),
            inputs={f"{x.step_id} ({x.write_id})": x.content for x in siblings},
            deadline_s=s.config.step_deadline_s,
            files=[path],
            base_versions={path: base.as_dict()},
        )
        actions.append(publish(s, body, f"merge/{path}/{attempt}", attempt))
    return actions
