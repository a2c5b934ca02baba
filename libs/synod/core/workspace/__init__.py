"""The shared workspace as events (pure core): file writes, leases, version vectors.

- `versions`: `VersionVector`, what a version of a file has seen.
- `leases`: `LeaseTable`, per-file single-writer leases with fencing tokens.
- `store`: `Workspace`, files built from `FileWrite` / `Resolve` events in
  `strong` or `eventual` consistency.
"""

from synod.core.workspace.leases import DenyReason, Lease, LeaseDenied, LeaseTable
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
    normalise_path,
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
    "Outcome",
    "RejectReason",
    "Rejected",
    "Resolve",
    "Sibling",
    "UnresolvedConflictError",
    "VersionVector",
    "Workspace",
    "WorkspaceStats",
    "normalise_path",
    "version_of",
    "write_id_for",
    "written_version",
]
