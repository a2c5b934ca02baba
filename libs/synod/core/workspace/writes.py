"""How a step attempt's writes are named and versioned, for writers and the planner alike.

A write's id derives from the request that made it, and (in a `dot_per_write`
workspace) its version is its base plus the dot `(write_id, 1)`, so the
planner knows the version every completed step wrote from its own log, and
can tell the next step what to build on without reading the workspace.
"""

from __future__ import annotations

from collections.abc import Mapping

from synod.core.workspace.store import version_of
from synod.core.workspace.versions import VersionVector
from synod.ids import derived_id


def write_id_for(request_id: str, path: str) -> str:
    # From the request: a redelivered request writes the same ids (a duplicate),
    # another attempt or a hedged copy (another request) writes new ones.
    return derived_id(request_id, f"write/{path}")


def written_version(base: Mapping[str, int], request_id: str, path: str) -> VersionVector:
    """The version the write of `path` by request `request_id`, based on `base`, gets."""
    return version_of(VersionVector.of(base), write_id_for(request_id, path))
