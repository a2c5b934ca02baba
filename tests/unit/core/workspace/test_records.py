"""Workspace writes as events: keys, what a step's output becomes, and the fold.

The fold is what every service runs to materialise a task's files from
synod.workspace; here it gets hand-made logs: sequential rewrites, hedged
copies, zombies with old leases or old bases, merges.
"""

from __future__ import annotations

import json

from synod.core.workspace import (
    fold,
    infer_mode,
    lease_key,
    module_for,
    partition_key,
    workspace_key,
    writes_for,
    written_version,
)
from synod.wire.messages import FileWritten, LeaseGranted


def test_every_record_has_its_own_key_so_compaction_only_merges_redeliveries() -> None:
    keys = {
        workspace_key("t1", "a.py", "w1"),
        workspace_key("t1", "a.py", "w2"),  # two writes of one path: both kept
        workspace_key("t1", "b.py", "w1"),
        lease_key("t1", "a.py", 1),
        lease_key("t1", "a.py", 2),
    }
    assert len(keys) == 5
    assert all(k.startswith(b"t1/") for k in keys)
    # ...and one partition (one order) for the whole task.
    assert partition_key("t1") == b"t1"


def test_a_coders_file_is_used_as_is_and_anything_else_is_still_python() -> None:
    out = json.dumps({"files": [{"path": "a.py", "content": "X = 1\n"}], "explanation": ""})
    assert module_for("a.py", "t", out) == "X = 1\n"
    stub = module_for("b.py", 'say """hi"""', 'prose with """ quotes and \\ slashes')
    compile(stub, "b.py", "exec")


def _write(
    step: str,
    request: str,
    path: str,
    content: str,
    base: dict[str, int] | None = None,
    token: int | None = None,
) -> FileWritten:
    out = json.dumps({"files": [{"path": path, "content": content}]})
    (w,) = writes_for(
        "t",
        step,
        request,
        "coder-0",
        [path],
        step,
        out,
        base_versions={path: base or {}},
        lease_tokens={path: token} if token is not None else {},
    )
    return w


def _grant(step: str, path: str, token: int, base: dict[str, int] | None = None) -> LeaseGranted:
    return LeaseGranted(path=path, step_id=step, token=token, base_version=base or {})


def test_a_later_step_rewriting_a_file_on_the_planners_base_is_no_conflict() -> None:
    v1 = written_version({}, "r1", "a.py").as_dict()
    log = [_write("s1", "r1", "a.py", "ONE"), _write("s2", "r2", "a.py", "TWO", base=v1)]
    done = fold("t", list(log), mode="eventual")
    assert done.files == {"a.py": "TWO"}
    assert done.stats.concurrent_writes == 0
    assert done.conflicts == ()
    assert done.lost == ()


def test_a_hedged_steps_losing_attempt_is_superseded_on_record() -> None:
    writes = [_write("s1", "r1", "a.py", "LOSER"), _write("s1", "r2", "a.py", "WINNER")]
    done = fold("t", list(writes), winners={"s1": "r2"})
    assert done.writes == 1
    assert done.files == {"a.py": "WINNER"}
    assert [s.write_id for s in done.superseded] == [writes[0].write_id]
    assert done.stats.concurrent_writes == 0


def test_concurrent_writes_are_siblings_and_a_conflict_never_an_exception() -> None:
    log = [_write("s1", "r1", "a.py", "ONE"), _write("s2", "r2", "a.py", "TWO")]
    done = fold("t", list(log), mode="eventual")
    assert "a.py" not in done.files
    assert [s.content for s in done.conflicted["a.py"]] == ["ONE", "TWO"]
    (conflict,) = done.conflicts
    assert conflict.open
    assert len(conflict.siblings) == 2
    assert done.lost == ()


def test_a_merge_based_on_every_sibling_resolves_the_conflict_and_keeps_both() -> None:
    log = [_write("s1", "r1", "a.py", "ONE"), _write("s2", "r2", "a.py", "TWO")]
    siblings = fold("t", list(log), mode="eventual").conflicted["a.py"]
    joined: dict[str, int] = {}
    for s in siblings:
        joined |= s.version.as_dict()
    merged = _write("merge:a.py", "m1", "a.py", "ONE+TWO", base=joined)
    done = fold("t", [*log, merged], mode="eventual")
    assert done.files == {"a.py": "ONE+TWO"}
    (conflict,) = done.conflicts
    assert not conflict.open
    assert conflict.resolved_by == merged.write_id
    assert {s.content for s in conflict.siblings} == {"ONE", "TWO"}
    assert done.stats.conflicts_resolved == 1
    assert done.lost == ()


def test_strong_a_zombie_with_an_older_lease_is_fenced_off() -> None:
    # s1 attempt 0 got token 1 and stalled; its retry (token 2) wrote; then the
    # zombie's write lands. With or without knowing the winner, it is not applied.
    zombie = _write("s1", "r1", "a.py", "ZOMBIE", token=1)
    retry = _write("s1", "r2", "a.py", "RIGHT", token=2)
    log = [_grant("s1", "a.py", 1), _grant("s1", "a.py", 2), retry, zombie]
    assert infer_mode(log) == "strong"
    done = fold("t", list(log))
    assert done.files == {"a.py": "RIGHT"}
    assert [(r.write_id, r.reason) for r in done.rejected] == [(zombie.write_id, "stale_token")]
    assert done.fenced == 1


def test_strong_a_stale_writer_of_an_earlier_step_cannot_overwrite_a_later_one() -> None:
    v1 = written_version({}, "r1", "a.py").as_dict()
    first = _write("s1", "r1", "a.py", "ONE", token=1)
    second = _write("s2", "r2", "a.py", "TWO", base=v1, token=2)
    zombie = _write("s1", "r1-stale", "a.py", "STALE", token=1)  # old lease, old base
    log = [_grant("s1", "a.py", 1), first, _grant("s2", "a.py", 2, v1), second, zombie]
    done = fold("t", list(log))
    assert done.files == {"a.py": "TWO"}
    assert [r.reason for r in done.rejected] == ["not_holder"]
    # Knowing the winners, the zombie is an alternative run of s1: superseded, on record.
    known = fold("t", list(log), winners={"s1": "r1", "s2": "r2"})
    assert known.files == {"a.py": "TWO"}
    assert [s.write_id for s in known.superseded] == [zombie.write_id]


def test_strong_a_write_without_a_lease_is_rejected_and_a_repeated_grant_is_harmless() -> None:
    log = [
        _grant("s1", "a.py", 1),
        _grant("s1", "a.py", 1),  # the planner forwarding the request again
        _write("s1", "r1", "a.py", "ONE", token=1),
        _write("s9", "r9", "b.py", "NO LEASE"),
    ]
    done = fold("t", list(log))
    assert done.files == {"a.py": "ONE"}
    assert [r.reason for r in done.rejected] == ["no_lease"]


def test_a_redelivered_write_is_one_write() -> None:
    once = _write("s1", "r1", "a.py", "ONE")
    done = fold("t", [once, once])
    assert done.stats.duplicates == 1
    assert done.files == {"a.py": "ONE"}
