"""A task's workspace records, pure: their keys, a step's writes, and the fold into files.

The records are `FileWritten` and `LeaseGranted` on `synod.workspace` (the
Kafka side, reading and publishing them, is `synod.transport.workspace`). Any
service rebuilds the files by folding a task's records into `Workspace`
(`fold`), in the task's mode:

- `strong`: a write must hold the file's newest lease (fencing token) and be
  based on the file's current version; a stale writer (a zombie after a
  retry, a redelivered old request) is `Rejected` and on record, never
  applied over a newer write.
- `eventual`: every write is accepted; one that did not see the file's
  current version is concurrent with it, both are kept as siblings and a
  `ConflictRecord` is opened until a merge covers them. Nothing is dropped.

Keys. The topic is compacted, and compaction keeps the newest record per key.
Keyed by task, it would keep one write of the whole task; keyed
`<task>/<path>`, the newest write of a path, so a sibling of a concurrent
write would disappear silently, and a later write's base would name writes no
longer in the log. So every record's key names the record:
`<task>/<path>/<write_id>` (a lease: `<task>/<path>/lease-<token>`), and
compaction only merges redeliveries of one record, which carry the same
content. Order matters (a grant before the writes under it, a write before
the writes based on it), so every record of a task goes to the partition its
task id picks (`partition_key`), as the task's other topics do.

Versions are dots per write (`Workspace(dot_per_write=True)`): a write
based on `B` with id `w` gets version `B + {w: 1}`. The planner computes the
bases it hands out from its own log (`version_of`), without folding this topic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from synod.core.workspace.leases import Lease
from synod.core.workspace.paths import normalise_path
from synod.core.workspace.store import (
    ConflictRecord,
    FileWrite,
    Rejected,
    Sibling,
    Workspace,
    WorkspaceStats,
)
from synod.core.workspace.versions import VersionVector
from synod.core.workspace.writes import write_id_for
from synod.wire.messages import Consistency, FileWritten, LeaseGranted

WorkspaceRecord = FileWritten | LeaseGranted


def workspace_key(task_id: str, path: str, write_id: str) -> bytes:
    """One key per write: compaction may merge redeliveries of it, nothing else."""
    return f"{task_id}/{path}/{write_id}".encode()


def lease_key(task_id: str, path: str, token: int) -> bytes:
    return f"{task_id}/{path}/lease-{token}".encode()


def partition_key(task_id: str) -> bytes:
    """What picks the partition of every workspace record of a task: the task id."""
    return task_id.encode()


def module_for(path: str, title: str, output: str) -> str:
    """The file a step's output becomes: the coder's file for `path`, else a stub module.

    A coder's output is `CodeOutput` JSON (`files: [{path, content}]`); the
    file it gives for `path` is used as is. Anything else still becomes valid
    Python that records the output, so materialising never yields a broken file
    that the step did not write.
    """
    try:
        parsed = json.loads(output)
    except (json.JSONDecodeError, TypeError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("files"), list):
        for f in parsed["files"]:
            if isinstance(f, dict) and f.get("path") == path and isinstance(f.get("content"), str):
                return str(f["content"])
    return f"# {title.splitlines()[0] if title else path}\nOUTPUT = {output!r}\n"


def writes_for(
    task_id: str,
    step_id: str,
    request_id: str,
    writer: str,
    files: list[str],
    title: str,
    output: str,
    *,
    base_versions: Mapping[str, Mapping[str, int]] | None = None,
    lease_tokens: Mapping[str, int] | None = None,
) -> list[FileWritten]:
    """The step's writes: based on what the planner said it builds on, with its leases."""
    bases = base_versions or {}
    tokens = lease_tokens or {}
    return [
        FileWritten(
            path=path,
            content=module_for(path, title, output),
            writer=writer,
            step_id=step_id,
            write_id=write_id_for(request_id, path),
            base_version=dict(bases.get(path, {})),
            lease_token=tokens.get(path),
        )
        for path in files
    ]


# ---------------------------------------------------------------- fold


@dataclass(frozen=True)
class Superseded:
    """A write of a step's non-winning attempt, based on the same version as the
    winner's (a hedged copy, or a re-run of the step on the same input): an alternative
    output of the step, not a concurrent edit. Left out of the files, kept on record."""

    write_id: str
    path: str
    step_id: str
    winner: str  # the request id of the step's winning attempt


@dataclass(frozen=True)
class Materialised:
    files: dict[str, str]  # settled files (a file in conflict is in `conflicted` instead)
    conflicted: dict[str, tuple[Sibling, ...]]  # open conflicts: every sibling, none dropped
    conflicts: tuple[ConflictRecord, ...]  # every conflict, open or resolved
    rejected: tuple[Rejected, ...]  # writes not applied and why (fenced, stale base)
    superseded: tuple[Superseded, ...]
    stats: WorkspaceStats
    writes: int  # writes folded (superseded alternatives left out)
    steps: dict[str, set[str]]  # path -> steps whose writes landed on it
    mode: Consistency
    workspace: Workspace  # for `materialise(at=...)`, `read`
    # Accepted writes the files no longer hold: neither in a file, nor covered by
    # a later version of it, nor on record as discarded by a resolution. A
    # lost update; always empty unless the workspace has a bug.
    lost: tuple[str, ...] = ()

    @property
    def fenced(self) -> int:
        """Writes a newer lease or version fenced off (`strong`)."""
        return sum(1 for r in self.rejected if r.reason != "invalid_path")


def infer_mode(records: Iterable[WorkspaceRecord]) -> Consistency:
    """`strong` if the planner granted leases in this log, else `eventual`."""
    return "strong" if any(isinstance(r, LeaseGranted) for r in records) else "eventual"


def fold(
    task_id: str,
    records: list[WorkspaceRecord],
    *,
    winners: Mapping[str, str] | None = None,
    mode: Consistency | None = None,
) -> Materialised:
    """Fold one task's workspace records (log order) into files.

    `winners` (step -> the request id of its winning attempt): a write of
    another attempt of the step based on the same version as the winner's
    write of that path is `Superseded` (first result wins). Any other
    write goes through the checks of `mode` (default: `infer_mode`), so a
    zombie that read an older version is fenced (`strong`) or a conflict
    (`eventual`), whatever step it claims to be.
    """
    mode = mode or infer_mode(records)
    writes = [r for r in records if isinstance(r, FileWritten)]
    winning = _winning_writes(writes, winners or {})
    space = Workspace(mode, dot_per_write=True)
    steps: dict[str, set[str]] = {}
    rejected: list[Rejected] = []
    superseded: list[Superseded] = []
    granted: set[tuple[str, int, str]] = set()
    accepted: dict[str, tuple[str, VersionVector]] = {}
    kept = 0
    for i, record in enumerate(records):
        if isinstance(record, LeaseGranted):
            path = normalise_path(record.path)
            grant = (path or record.path, record.token, record.step_id)
            if path is not None and grant not in granted:
                granted.add(grant)
                # A lease lasts until a newer grant of the path fences it: fold time
                # is log order, not a clock, and a late but unfenced write loses nothing.
                space.leases.grant(Lease(path, record.step_id, record.token, math.inf))
            continue
        won = (winners or {}).get(record.step_id)
        twin = winning.get((record.step_id, record.path))
        if won and twin and record.write_id != twin.write_id and _same_start(record, twin):
            superseded.append(Superseded(record.write_id, record.path, record.step_id, won))
            continue
        token = record.lease_token
        if twin is not None and record.write_id == twin.write_id and token is not None:
            # The log's winner speaks for its step: a retry of the same step granted
            # after it started (it stalled, then finished first) does not fence it;
            # the retry's own write is the superseded one. Another step's newer
            # lease still does (not_holder).
            current = space.leases.current(normalise_path(record.path) or "", float(i))
            if current is not None and current.holder == record.step_id:
                token = max(token, current.token)
        outcome = space.apply(
            FileWrite(
                path=record.path,
                content=record.content,
                # The lease holder is the step (any instance may run it), so the
                # workspace's writer is the step; the instance is in the record.
                writer=record.step_id,
                base_version=VersionVector.of(record.base_version),
                step_id=record.step_id,
                write_id=record.write_id,
                lease_token=token,
            ),
            float(i),
        )
        kept += 1
        if isinstance(outcome, Rejected):
            if outcome not in rejected:
                rejected.append(outcome)
            continue
        accepted[outcome.write_id] = (outcome.path, outcome.version)
        steps.setdefault(outcome.path, set()).add(record.step_id)
    files: dict[str, str] = {}
    conflicted: dict[str, tuple[Sibling, ...]] = {}
    for path in space.paths():
        view = space.read(path)
        if view.conflicted:
            conflicted[path] = view.siblings
        elif view.siblings:
            files[path] = view.siblings[0].content
    return Materialised(
        lost=lost_writes(space, accepted),
        files=files,
        conflicted=conflicted,
        conflicts=space.conflicts(),
        rejected=tuple(rejected),
        superseded=tuple(superseded),
        stats=space.stats,
        writes=kept,
        steps=steps,
        mode=mode,
        workspace=space,
    )


def lost_writes(
    space: Workspace, accepted: Mapping[str, tuple[str, VersionVector]]
) -> tuple[str, ...]:
    """Of the accepted writes (write id -> path, version), those `space` lost: not in
    their file, not covered by its version, not on record as discarded."""
    discarded = {w for c in space.conflicts() for w in c.discarded}
    return tuple(
        write_id
        for write_id, (path, version) in accepted.items()
        if write_id not in discarded and not space.read(path).version.covers(version)
    )


def _winning_writes(
    writes: list[FileWritten], winners: Mapping[str, str]
) -> dict[tuple[str, str], FileWritten]:
    out: dict[tuple[str, str], FileWritten] = {}
    for w in writes:
        won = winners.get(w.step_id)
        if won is not None and w.write_id == write_id_for(won, w.path):
            out.setdefault((w.step_id, w.path), w)
    return out


def _same_start(a: FileWritten, b: FileWritten) -> bool:
    # Same step, same base: two runs of one step on the same input (a hedge, a
    # retry after a stall). Only one is the step's output, and which one is the
    # log's first completion, whichever write landed first or held the newer lease.
    return VersionVector.of(a.base_version) == VersionVector.of(b.base_version)
