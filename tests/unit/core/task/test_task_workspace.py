"""The TaskMachine as the authority on its task's workspace: bases, leases, merges.

Each test runs the machine as the planner would and plays the coders' part
with `writes_for` (what the worker publishes) and the planner's LeaseGranted
records, then folds that log as any service would.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests import taskcore
from tests.taskcore import decided

from synod.core.task import (
    MAX_MERGE_ROUNDS,
    CheckWorkspace,
    Publish,
    TaskMachine,
    WorkspaceChecked,
)
from synod.core.workspace import WorkspaceRecord, fold, writes_for, written_version
from synod.wire import PlanStep, StepCompleted, StepFailed, StepRequested, TaskFailed, VoteRequested
from synod.wire.messages import LeaseGranted

from .test_task_machine import env, feed, submitted

CHAIN = [
    PlanStep(step_id="s1", files=["a.py"]),
    PlanStep(step_id="s2", depends_on=["s1"], files=["a.py", "b.py"]),
    PlanStep(step_id="s3", depends_on=["s2"], files=["a.py"]),
]


def _machine(consistency: str, plan: list[PlanStep] = CHAIN) -> TaskMachine:
    machine = TaskMachine("t1")
    taskcore.fold(machine, submitted(plan=plan, consistency=consistency))
    feed(machine, decided(machine))  # the plan
    return machine


def _records(request: Publish, content: str) -> list[WorkspaceRecord]:
    """What the planner logs for a request (its grants) and what the coder then writes."""
    body = request.body
    assert isinstance(body, StepRequested)
    grants: list[WorkspaceRecord] = [
        LeaseGranted(path=p, step_id=body.step_id, token=t, base_version=body.base_versions[p])
        for p, t in sorted(body.lease_tokens.items())
    ]
    out = '{"files": [' + ",".join(f'{{"path": "{p}", "content": "{content}"}}' for p in body.files)
    writes = writes_for(
        "t1",
        body.step_id,
        request.message_id,
        "coder-0",
        body.files,
        body.title,
        out + "]}",
        base_versions=body.base_versions,
        lease_tokens=body.lease_tokens,
    )
    return [*grants, *writes]


def _run_chain(machine: TaskMachine) -> tuple[list[WorkspaceRecord], list[Publish]]:
    log: list[WorkspaceRecord] = []
    requests: list[Publish] = []
    for _ in CHAIN:
        (request,) = decided(machine)
        assert isinstance(request, Publish)
        feed(machine, [request])
        requests.append(request)
        log += _records(request, f"by {request.body.step_id}")
        taskcore.fold(
            machine, env(StepCompleted(step_id=request.body.step_id), attempt=request.attempt)
        )
    return log, requests


def test_strong_each_request_gets_a_newer_lease_and_the_version_it_builds_on() -> None:
    machine = _machine("strong")
    log, (r1, r2, r3) = _run_chain(machine)
    assert r1.body.lease_tokens == {"a.py": 1}
    assert r1.body.base_versions == {"a.py": {}}
    assert r2.body.lease_tokens == {"a.py": 2, "b.py": 1}
    v1 = written_version({}, r1.message_id, "a.py")
    assert r2.body.base_versions == {"a.py": v1.as_dict(), "b.py": {}}
    v2 = written_version(v1.as_dict(), r2.message_id, "a.py")
    assert r3.body.base_versions == {"a.py": v2.as_dict()}

    done = fold("t1", log)
    assert done.mode == "strong"
    assert done.files == {"a.py": "by s3", "b.py": "by s2"}
    assert done.rejected == ()
    assert done.conflicts == ()
    assert done.lost == ()


def test_eventual_sequential_rewrites_are_updates_not_false_conflicts() -> None:
    machine = _machine("eventual")
    log, requests = _run_chain(machine)
    assert all(r.body.lease_tokens == {} for r in requests)
    done = fold("t1", log)
    assert done.mode == "eventual"
    assert done.files == {"a.py": "by s3", "b.py": "by s2"}
    assert done.stats.concurrent_writes == 0
    assert done.lost == ()


def test_strong_a_retry_fences_the_stalled_attempt_and_a_hedge_shares_the_lease() -> None:
    machine = _machine("strong")
    (first,) = decided(machine)
    feed(machine, [first])
    taskcore.fold(machine, env(StepFailed(step_id="s1", error_class="transient"), attempt=0))
    (retry,) = decided(machine)
    assert retry.attempt == 1
    assert retry.body.lease_tokens == {"a.py": 2}
    feed(machine, [retry])
    # The failed attempt was only slow: its write lands after the retry's.
    log = _records(first, "stale")[:1] + _records(retry, "fresh") + _records(first, "stale")[1:]
    done = fold("t1", log)
    assert done.files == {"a.py": "fresh"}
    assert [r.reason for r in done.rejected] == ["stale_token"]

    hedged = _machine("strong", [PlanStep(step_id=f"h{i}", files=[f"h{i}.py"]) for i in range(6)])
    originals = decided(hedged)
    feed(hedged, originals)
    for a in originals[:5]:
        taskcore.fold(hedged, env(StepCompleted(step_id=a.body.step_id, duration_s=1.0)))
    late = hedged.requested_at["h5"] + timedelta(seconds=60)
    (hedge,) = taskcore.hedges(hedged, late)
    assert hedge.body.prompt_variant == "hedge"
    assert hedge.body.lease_tokens == originals[5].body.lease_tokens


def test_the_same_action_derived_twice_gets_the_same_lease() -> None:
    machine = _machine("strong", [PlanStep(step_id=f"x{i}", files=[f"x{i}.py"]) for i in range(3)])
    once = decided(machine)
    again = decided(machine)  # before the first ones are folded back
    assert once == again
    assert [a.body.lease_tokens for a in once] == [{f"x{i}.py": 1} for i in range(3)]


def _conflicted(machine: TaskMachine) -> dict[str, Any]:
    """Run the chain, then a zombie copy of s3 that read a.py before s1 and s2 wrote it
    writes it from the empty version."""
    log, _ = _run_chain(machine)
    (zombie,) = writes_for("t1", "s3", "zombie-request", "coder-9", ["a.py"], "s3", "late")
    return {"log": [*log, zombie], "zombie": zombie}


def test_eventual_a_conflict_holds_the_vote_until_a_merge_step_resolves_it() -> None:
    machine = _machine("eventual")
    case = _conflicted(machine)
    (check,) = decided(machine)  # the vote waits for a look at the workspace
    assert isinstance(check, CheckWorkspace)
    assert check.winners == machine.workspace_winners()
    space = fold("t1", case["log"], winners=check.winners)
    assert set(space.conflicted) == {"a.py"}  # detected, not applied over "by s3"
    machine.step(WorkspaceChecked(check.winners, space.conflicted))

    (merge,) = decided(machine)
    body = merge.body
    assert body.step_id == "merge:a.py"
    assert body.files == ["a.py"]
    assert set(body.inputs.values()) == {"by s3", case["zombie"].content}
    feed(machine, [merge])
    assert decided(machine) == []  # no vote while merging

    log = case["log"] + _records(merge, "merged")
    taskcore.fold(machine, env(StepCompleted(step_id="merge:a.py"), attempt=merge.attempt))
    space = fold("t1", log, winners=machine.workspace_winners())
    assert space.conflicted == {}
    assert space.files["a.py"] == "merged"
    (record,) = space.conflicts
    assert not record.open
    assert {s.content for s in record.siblings} == {"by s3", case["zombie"].content}
    assert space.lost == ()
    (check_again,) = decided(machine)  # the merge's write is a winner now: look again
    assert isinstance(check_again, CheckWorkspace)
    assert check_again.winners == machine.workspace_winners() != check.winners
    machine.step(WorkspaceChecked(check_again.winners, space.conflicted))
    (vote,) = decided(machine)
    assert isinstance(vote.body, VoteRequested)
    assert vote.body.proposal_id == "t1/answer"


def test_eventual_a_file_that_stays_in_conflict_fails_the_task_naming_it() -> None:
    machine = _machine("eventual")
    case = _conflicted(machine)
    (check,) = decided(machine)
    space = fold("t1", case["log"], winners=check.winners)
    machine.step(WorkspaceChecked(check.winners, space.conflicted))
    for _ in range(MAX_MERGE_ROUNDS):
        (merge,) = decided(machine)
        assert merge.body.step_id == "merge:a.py"
        feed(machine, [merge])
        taskcore.fold(
            machine,
            env(StepFailed(step_id="merge:a.py", error_class="transient"), attempt=merge.attempt),
        )
    (fail,) = decided(machine)
    assert isinstance(fail.body, TaskFailed)
    assert "a.py" in fail.body.reason
    assert case["zombie"].write_id in fail.body.reason


def test_strong_tasks_and_tasks_without_files_do_not_wait_for_a_workspace_check() -> None:
    machine = _machine("strong")
    _run_chain(machine)
    (vote,) = decided(machine)
    assert isinstance(vote.body, VoteRequested)  # no workspace check first
    bare = _machine("eventual", [PlanStep(step_id="r", role="researcher")])
    (request,) = decided(bare)
    feed(bare, [request])
    taskcore.fold(bare, env(StepCompleted(step_id="r")))
    (vote,) = decided(bare)
    assert isinstance(vote.body, VoteRequested)
