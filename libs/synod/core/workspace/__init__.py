"""The shared workspace as events (writes, leases, versions); imports cores, wire, errors, ids.

- `versions`: `VersionVector`, what a version of a file has seen.
- `leases`: `LeaseTable`, per-file single-writer leases with fencing tokens.
- `store`: `Workspace`, files built from `FileWrite` / `Resolve` events in
  `strong` or `eventual` consistency.
- `paths`: `normalise_path`, the one rule for what a project's file path may be.
- `records`: a task's `FileWritten` / `LeaseGranted` records: their keys, a
  step's writes, and `fold` into files (the Kafka side is `synod.transport.workspace`).

May import `synod.wire`, `synod.errors` and `synod.ids`; no I/O, no clock.
"""

from synod.core.workspace.leases import DenyReason, Lease, LeaseDenied, LeaseTable
from synod.core.workspace.paths import normalise_path
from synod.core.workspace.records import (
    Materialised,
    Superseded,
    WorkspaceRecord,
    fold,
    infer_mode,
    lease_key,
    lost_writes,
    module_for,
    partition_key,
    workspace_key,
    writes_for,
)
from synod.core.workspace.store import (
    Applied,
    Conflict,
    ConflictRecord,
    FileView,
    FileWrite,
    Outcome,
    Rejected,
    RejectReason,
    Resolve,
    Sibling,
    UnresolvedConflictError,
    Workspace,
    WorkspaceStats,
    version_of,
)
from synod.core.workspace.versions import VersionVector
from synod.core.workspace.writes import write_id_for, written_version

__all__ = [
    "Applied",
    "Conflict",
    "ConflictRecord",
    "DenyReason",
    "FileView",
    "FileWrite",
    "Lease",
    "LeaseDenied",
    "LeaseTable",
    "Materialised",
    "Outcome",
    "RejectReason",
    "Rejected",
    "Resolve",
    "Sibling",
    "Superseded",
    "UnresolvedConflictError",
    "VersionVector",
    "Workspace",
    "WorkspaceRecord",
    "WorkspaceStats",
    "fold",
    "infer_mode",
    "lease_key",
    "lost_writes",
    "module_for",
    "normalise_path",
    "partition_key",
    "version_of",
    "workspace_key",
    "write_id_for",
    "writes_for",
    "written_version",
]
