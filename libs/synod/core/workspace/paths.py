"""What a file path in a project may be: one rule for the plan, the workspace and the sandbox.

A plan names the files each step writes, the workspace stores writes by path,
and the sandbox puts the files on disk to run the tests. If the plan accepted
a path the workspace rejects, a valid plan would produce writes that are
rejected as `invalid_path` and files that never appear; so all three ask
`normalise_path`, and a property test holds the plan to it.
"""

from __future__ import annotations

import posixpath


def normalise_path(path: str) -> str | None:
    """A relative POSIX path inside the workspace, normalised; None if it is not one.

    Refused: empty, absolute, with a backslash (a Windows separator, ambiguous on
    POSIX), with a NUL (no file system can name it), or leaving the root (`..`).
    """
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        return None
    norm = posixpath.normpath(path)
    if norm in (".", "..") or norm.startswith("../"):
        return None
    return norm
