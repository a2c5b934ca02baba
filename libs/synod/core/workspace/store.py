"""The shared workspace as a log of write events, never a shared disk.

Every service that consumes the same log in the same order builds the same
`Workspace`; `version()` is how far into that log (accepted events) it is,
and `materialise(at=...)` gives the files as they were at any earlier version.

A write says what it is based on: the version vector of the file as the
writer read it. That is enough to tell an update of what was read from an
update that overwrites something the writer never saw (a lost update):

- `strong`: a write needs the current lease on the path (fencing token) and
  must be based on the current version; anything else is `Rejected`, and the
  writer re-reads and retries. Files never have more than one version.
- `eventual`: every write is accepted. A write whose base does not cover the
  file's current versions is concurrent with them: all of them are kept as
  siblings and a `ConflictRecord` is opened, until a write or a `Resolve`
  based on all of them replaces them. Nothing is overwritten unseen.

Each accepted write gets a dot: its writer's next counter in this workspace.
Its version is its base plus that dot, so it covers exactly what the writer
read and itself, and no two writes share a version.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from synod.core.workspace.leases import LeaseTable
from synod.core.workspace.paths import normalise_path
from synod.core.workspace.versions import VersionVector
from synod.errors import ErrorClass, SynodError
from synod.wire.messages import Consistency

# ---------------------------------------------------------------- events in


@dataclass(frozen=True)
class FileWrite:
    """Write `content` to `path`, based on `base_version` (what the writer read).

    `write_id` identifies the event: applying the same id twice (a redelivery)
    returns the first outcome. A retry after `Rejected` is a new write, with a
    new id. `lease_token` is required in `strong` mode.
    """

    path: str
    content: str
    writer: str
    base_version: VersionVector
    step_id: str
    write_id: str
    lease_token: int | None = None


@dataclass(frozen=True)
class Resolve:
    """Settle an open conflict on `path` with `content` (one sibling chosen by a vote, or a merge).

    `base_version` is the join of the siblings the resolver looked at; a
    sibling written after that stays, so a resolution cannot lose a write either.
    """

    path: str
    content: str
    resolver: str
    base_version: VersionVector
    write_id: str
    chosen: str | None = None  # write_id of the sibling picked, if one was


# ---------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Sibling:
    """One accepted version of a file."""

    write_id: str
    writer: str
    content: str
    version: VersionVector
    step_id: str


@dataclass(frozen=True)
class Applied:
    write_id: str
    path: str
    version: VersionVector
    superseded: tuple[str, ...]  # write ids of the versions this one replaced
    resolved: str | None = None  # the conflict this write closed, if any


@dataclass(frozen=True)
class Conflict:
    """Accepted, but concurrent with `siblings` (write ids, this one included)."""

    write_id: str
    path: str
    version: VersionVector
    conflict_id: str
    siblings: tuple[str, ...]


RejectReason = Literal[
    "invalid_path",
    "unknown_base",  # the base names writes this file never had
    "stale_base",  # strong: the file changed since the writer read it
    "no_lease",
    "not_holder",
    "stale_token",
    "expired",
    "no_conflict",  # a Resolve for a path with nothing to resolve
    "unknown_choice",  # a Resolve choosing a sibling its base does not cover
]


@dataclass(frozen=True)
class Rejected:
    """Not applied; the writer re-reads `path` (now at `current`) and tries again."""

    write_id: str
    path: str
    reason: RejectReason
    current: VersionVector


Outcome = Applied | Conflict | Rejected


@dataclass(frozen=True)
class ConflictRecord:
    """Concurrent versions of one file, kept until one write covers them all.

    `siblings` lists every version that took part, including those a partial
    merge already replaced, so a report shows everything that was at stake.
    A write covering siblings claims to have merged them; a `Resolve` with
    `chosen` says it kept one, and the others land in `discarded`, so a write
    dropped by a vote is always on record.
    """

    conflict_id: str
    path: str
    siblings: tuple[Sibling, ...]
    opened_at: int
    discarded: tuple[str, ...] = ()  # siblings a Resolve replaced by choosing another
    resolved_at: int | None = None
    resolved_by: str | None = None  # write id of the covering write or Resolve
    resolver: str | None = None
    chosen: str | None = None

    @property
    def open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True)
class FileView:
    """What a reader sees: all current siblings, and the version to base a write on."""

    path: str
    siblings: tuple[Sibling, ...]
    version: VersionVector

    @property
    def exists(self) -> bool:
        return bool(self.siblings)

    @property
    def conflicted(self) -> bool:
        return len(self.siblings) > 1

    @property
    def contents(self) -> tuple[str, ...]:
        return tuple(s.content for s in self.siblings)

    @property
    def content(self) -> str | None:
        """The single content; None if the file does not exist."""
        if self.conflicted:
            raise UnresolvedConflictError((self.path,))
        return self.siblings[0].content if self.siblings else None


@dataclass(frozen=True)
class WorkspaceStats:
    applied: int  # accepted writes and resolves, concurrent ones included
    rejected: int
    concurrent_writes: int  # accepted writes that did not cover the file's versions
    conflicts_opened: int
    conflicts_resolved: int
    duplicates: int  # events seen again (same write_id)


class UnresolvedConflictError(SynodError):
    """A file still has concurrent versions; resolve them before reading it as one."""

    # Transient: a Resolve makes the same read succeed.
    error_class: ErrorClass = "transient"

    def __init__(self, paths: tuple[str, ...]) -> None:
        super().__init__(f"unresolved conflicts in: {', '.join(paths)}")
        self.paths = paths


@dataclass
class _File:
    siblings: tuple[Sibling, ...] = ()
    seen: VersionVector = field(default_factory=VersionVector)  # join of every version
    conflict: ConflictRecord | None = None
    history: list[tuple[int, tuple[Sibling, ...]]] = field(default_factory=list)


class Workspace:
    """The files of one task, built by applying write events in log order."""

    def __init__(
        self,
        mode: Consistency = "strong",
        leases: LeaseTable | None = None,
        *,
        dot_per_write: bool = False,
    ) -> None:
        """`dot_per_write`: each accepted event's dot is `(write_id, 1)` instead of the
        writer's next counter, so anyone who knows a write's base and id knows the
        version it will get (`version_of`) without reading the log: the planner
        hands out bases from its own log that way. Vectors then grow by one entry
        per write in a file's history, which is small for a task's files."""
        self.mode: Consistency = mode
        self.dot_per_write = dot_per_write
        self.leases = leases if leases is not None else LeaseTable()
        self._files: dict[str, _File] = {}
        self._dots: dict[str, int] = {}
        self._version = 0
        self._outcomes: dict[str, Outcome] = {}
        self._conflicts: dict[str, ConflictRecord] = {}
        self._rejected = self._concurrent = self._opened = self._resolved = self._dups = 0

    # ------------------------------------------------------------ input

    def apply(self, event: FileWrite | Resolve, now: float) -> Outcome:
        """Apply one event at log time `now` (used for lease expiry)."""
        earlier = self._outcomes.get(event.write_id)
        if earlier is not None:
            self._dups += 1
            return earlier
        outcome = self._apply(event, now)
        self._outcomes[event.write_id] = outcome
        return outcome

    def _apply(self, event: FileWrite | Resolve, now: float) -> Outcome:
        path = normalise_path(event.path)
        if path is None:
            return self._reject(event, event.path, "invalid_path", VersionVector())
        f = self._files.get(path) or _File()
        current = _join(f.siblings)
        base = event.base_version
        if not f.seen.covers(base):
            return self._reject(event, path, "unknown_base", current)
        if isinstance(event, Resolve):
            if f.conflict is None:
                return self._reject(event, path, "no_conflict", current)
            covered = {s.write_id for s in f.siblings if base.covers(s.version)}
            if event.chosen is not None and event.chosen not in covered:
                return self._reject(event, path, "unknown_choice", current)
        if self.mode == "strong" and isinstance(event, FileWrite):
            denied = self.leases.check(path, event.writer, event.lease_token, now)
            if denied is not None:
                return self._reject(event, path, denied, current)
            if base != current:
                return self._reject(event, path, "stale_base", current)

        writer = event.writer if isinstance(event, FileWrite) else event.resolver
        step_id = event.step_id if isinstance(event, FileWrite) else ""
        if self.dot_per_write:
            version = version_of(base, event.write_id)
        else:
            self._dots[writer] = self._dots.get(writer, 0) + 1
            version = base.with_entry(writer, self._dots[writer])
        new = Sibling(event.write_id, writer, event.content, version, step_id)
        superseded = tuple(s for s in f.siblings if base.covers(s.version))
        remaining = tuple(s for s in f.siblings if not base.covers(s.version))
        discarded: tuple[str, ...] = ()
        if isinstance(event, Resolve) and event.chosen is not None:
            discarded = tuple(s.write_id for s in superseded if s.write_id != event.chosen)
        f.siblings = (*remaining, new)
        f.seen = f.seen.join(version)
        self._version += 1
        f.history.append((self._version, f.siblings))
        self._files[path] = f

        if remaining:
            self._concurrent += 1
            if f.conflict is None:
                self._opened += 1
                cid = f"{path}#{self._opened}"
                f.conflict = ConflictRecord(cid, path, (*remaining, new), self._version)
                self._conflicts[cid] = f.conflict
            else:
                f.conflict = self._update(
                    f.conflict,
                    siblings=(*f.conflict.siblings, new),
                    discarded=(*f.conflict.discarded, *discarded),
                )
            ids = tuple(s.write_id for s in f.siblings)
            return Conflict(event.write_id, path, version, f.conflict.conflict_id, ids)

        resolved = None
        if f.conflict is not None:
            resolved = f.conflict.conflict_id
            self._resolved += 1
            self._update(
                f.conflict,
                resolved_at=self._version,
                resolved_by=event.write_id,
                discarded=(*f.conflict.discarded, *discarded),
                resolver=writer,
                chosen=event.chosen if isinstance(event, Resolve) else None,
            )
            f.conflict = None
        return Applied(
            event.write_id, path, version, tuple(s.write_id for s in superseded), resolved
        )

    def _reject(
        self, event: FileWrite | Resolve, path: str, reason: RejectReason, current: VersionVector
    ) -> Rejected:
        self._rejected += 1
        return Rejected(event.write_id, path, reason, current)

    def _update(self, record: ConflictRecord, **changes: Any) -> ConflictRecord:
        # Records handed out stay as they were; the workspace keeps the newest one.
        new = replace(record, **changes)
        self._conflicts[record.conflict_id] = new
        return new

    # ------------------------------------------------------------ queries

    def read(self, path: str) -> FileView:
        norm = normalise_path(path)
        f = self._files.get(norm) if norm is not None else None
        if f is None:
            return FileView(path, (), VersionVector())
        return FileView(norm or path, f.siblings, _join(f.siblings))

    def paths(self) -> tuple[str, ...]:
        return tuple(sorted(self._files))

    def version(self) -> int:
        """How many events this workspace has accepted: its position in the log."""
        return self._version

    def clock(self) -> VersionVector:
        """The join of every file's version: every write this workspace holds."""
        out = VersionVector()
        for f in self._files.values():
            out = out.join(_join(f.siblings))
        return out

    def materialise(self, at: int | None = None) -> dict[str, str]:
        """path -> content at version `at` (default: now); refuses while a file is in conflict."""
        at = self._version if at is None else at
        if not 0 <= at <= self._version:
            raise ValueError(f"version {at} is outside 0..{self._version}")
        files: dict[str, str] = {}
        conflicted: list[str] = []
        for path in sorted(self._files):
            history = self._files[path].history
            i = bisect.bisect_right([v for v, _ in history], at)
            if i == 0:
                continue
            siblings = history[i - 1][1]
            if len(siblings) > 1:
                conflicted.append(path)
            else:
                files[path] = siblings[0].content
        if conflicted:
            raise UnresolvedConflictError(tuple(conflicted))
        return files

    def conflicts(self, *, open_only: bool = False) -> tuple[ConflictRecord, ...]:
        return tuple(c for c in self._conflicts.values() if c.open or not open_only)

    @property
    def stats(self) -> WorkspaceStats:
        return WorkspaceStats(
            applied=self._version,
            rejected=self._rejected,
            concurrent_writes=self._concurrent,
            conflicts_opened=self._opened,
            conflicts_resolved=self._resolved,
            duplicates=self._dups,
        )


def version_of(base: VersionVector, write_id: str) -> VersionVector:
    """The version an accepted write gets in a `dot_per_write` workspace."""
    return base.with_entry(write_id, 1)


def _join(siblings: tuple[Sibling, ...]) -> VersionVector:
    out = VersionVector()
    for s in siblings:
        out = out.join(s.version)
    return out
