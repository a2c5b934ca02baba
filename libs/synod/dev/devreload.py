"""Dev-only: run a service module and restart it when its Python sources change.

`python -m synod.dev.devreload synod_services.planner` runs the service as a child
process and restarts it (same pod, no container restart) when a synced *.py
file under the watched packages changes. The chart uses it only with
`dev.reload: true`, which the skaffold `dev` profile sets; production pods run
the service directly, so a stray file change there can never restart anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

Snapshot = Mapping[str, float]
POLL_SECONDS = 1.0
WATCHED_PACKAGES = ("synod", "synod_services")


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    """Files added, removed or modified between two snapshots (sorted)."""
    keys = set(before) | set(after)
    return sorted(k for k in keys if before.get(k) != after.get(k))


def snapshot(roots: Iterable[Path]) -> dict[str, float]:
    """mtime of every *.py under roots; a file vanishing mid-walk is skipped."""
    out: dict[str, float] = {}
    for root in roots:
        for path in root.rglob("*.py"):
            try:
                out[str(path)] = path.stat().st_mtime
            except FileNotFoundError:
                continue
    return out


def package_roots(names: Iterable[str] = WATCHED_PACKAGES) -> list[Path]:
    import importlib.util

    roots: list[Path] = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots.extend(Path(p) for p in spec.submodule_search_locations)
    return roots


def _stop(child: subprocess.Popen[bytes], grace: float) -> None:
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m synod.dev.devreload MODULE [ARGS...]", file=sys.stderr)
        return 2
    packages = os.environ.get("SYNOD_RELOAD_PACKAGES", ",".join(WATCHED_PACKAGES))
    roots = package_roots(p.strip() for p in packages.split(",") if p.strip())
    if not roots:
        print(f"devreload: none of {packages!r} is importable, nothing to watch", file=sys.stderr)
        return 2
    stopping = False

    def on_term(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    grace = float(os.environ.get("SYNOD_RELOAD_GRACE_SECONDS", "10"))
    while True:
        seen = snapshot(roots)
        child = subprocess.Popen([sys.executable, "-m", *args])
        while not stopping:
            time.sleep(POLL_SECONDS)
            if child.poll() is not None:
                # A crash is the service's exit: Kubernetes should see it.
                return child.returncode
            diff = changed(seen, snapshot(roots))
            if diff:
                print(
                    f"devreload: {len(diff)} file(s) changed ({diff[0]} ...), restarting",
                    file=sys.stderr,
                )
                break
        _stop(child, grace)
        if stopping:
            # Asked to stop (pod termination): a clean exit, whatever signal ended the child.
            return 0


if __name__ == "__main__":
    sys.exit(main())
