"""Workspace writes as events: what a step's output becomes, and the fold."""

from __future__ import annotations

import json

import pytest

from synod.team.workspace import fold, module_for, workspace_key, writes_for
from synod.wire.messages import FileWritten
from synod.workspace import UnresolvedConflictError


def test_the_key_names_task_and_path_so_compaction_keeps_every_file() -> None:
    assert workspace_key("t1", "a.py") != workspace_key("t1", "b.py")
    assert workspace_key("t1", "a.py") == b"t1/a.py"


def test_a_coders_file_is_used_as_is_and_anything_else_is_still_python() -> None:
    out = json.dumps({"files": [{"path": "a.py", "content": "X = 1\n"}], "explanation": ""})
    assert module_for("a.py", "t", out) == "X = 1\n"
    stub = module_for("b.py", 'say """hi"""', 'prose with """ quotes and \\ slashes')
    compile(stub, "b.py", "exec")


def _writes(step: str, request: str, writer: str, path: str) -> list[FileWritten]:
    out = json.dumps({"files": [{"path": path, "content": f"BY = {writer!r}\n"}]})
    return writes_for("t", step, request, writer, [path], step, out)


def test_a_hedged_steps_losing_attempt_is_left_out() -> None:
    # Both copies on one instance: the request, not the writer, tells them apart.
    writes = _writes("s1", "r1", "coder-1", "a.py") + _writes("s1", "r2", "coder-1", "a.py")
    done = fold("t", writes, winners={"s1": "r2"})
    assert done.writes == 1
    assert done.stats.concurrent_writes == 0


def test_concurrent_writes_without_a_winner_are_a_conflict_not_a_lost_write() -> None:
    writes = _writes("s1", "r1", "coder-0", "a.py") + _writes("s2", "r2", "coder-1", "a.py")
    with pytest.raises(UnresolvedConflictError, match=r"a\.py"):
        fold("t", writes)


def test_a_redelivered_write_is_one_write() -> None:
    once = _writes("s1", "r1", "coder-0", "a.py")
    done = fold("t", once + once)
    assert done.stats.duplicates == 1
    assert done.files == {"a.py": "BY = 'coder-0'\n"}
