"""Run a project's tests on a materialised workspace, isolated (the verifier).

The files go into a fresh temporary directory and pytest runs there in a
subprocess: a wall-clock timeout, CPU/memory/file-size limits set in the
child before exec (`resource.setrlimit`), and no network. Sockets are blocked
by a `sitecustomize` on the child's path that replaces `socket.socket`, since
`unshare -n` needs privileges the services usually lack; code under test
could undo it, so this guards against accidents, not against hostile code.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from synod.core.workspace import normalise_path

# Internet sockets only: an asyncio event loop needs a local socketpair (AF_UNIX)
# to wake itself, so blocking every socket would fail every async test.
_NO_NETWORK = """\
import socket as _socket

_NETWORK = {_socket.AF_INET, _socket.AF_INET6}


class _Blocked(_socket.socket):
    def __init__(self, family=-1, *args, **kwargs):
        if family == -1 or family in _NETWORK:
            raise OSError("network access is disabled in the verifier")
        super().__init__(family, *args, **kwargs)


_socket.socket = _Blocked
_socket.create_connection = lambda *a, **k: _Blocked(_socket.AF_INET)
"""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    returncode: int | None  # None: killed at the timeout
    output: str
    # From pytest's JUnit XML report; `reported` is False when pytest wrote none
    # (it could not start, or was killed), and then the counts mean nothing.
    reported: bool = False
    passed_count: int = 0
    failed: tuple[str, ...] = ()  # failing and erroring tests, as pytest names them
    skipped_count: int = 0

    @property
    def summary(self) -> str:
        """One line, e.g. `18 passed, 2 failed: test_a.py::test_x, test_a.py::test_y`."""
        if self.returncode is None:
            return self.output.strip().splitlines()[-1]  # "timed out after N s"
        if not self.reported:
            last = self.output.strip().splitlines()[-1:] or ["no output"]
            return f"pytest did not run (exit {self.returncode}): {last[0][:300]}"
        head = f"{self.passed_count} passed, {len(self.failed)} failed"
        if self.skipped_count:
            head += f", {self.skipped_count} skipped"
        if not self.failed and not self.passed:
            return f"{head} (pytest exit {self.returncode})"
        if not self.failed:
            return head
        names = ", ".join(self.failed[:10])
        more = f" and {len(self.failed) - 10} more" if len(self.failed) > 10 else ""
        return f"{head}: {names}{more}"[:1_000]


def _read_report(report: Path) -> tuple[int, tuple[str, ...], int] | None:
    """(passed, failed names, skipped) from a JUnit XML report, None if absent or unreadable."""
    try:
        root = ET.parse(report).getroot()
    except (OSError, ET.ParseError):
        return None
    passed, skipped, failed = 0, 0, []
    for case in root.iter("testcase"):
        owner, name = case.get("classname") or "", case.get("name") or "?"
        name = f"{owner}::{name}" if owner else name
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, tuple(failed), skipped


def _limits(cpu_s: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))


def verify(
    files: dict[str, str],
    tests: dict[str, str],
    *,
    timeout_s: float = 60.0,
    cpu_s: int = 60,
    memory_bytes: int = 1 << 30,
) -> Verdict:
    """Write `files` and `tests`, run pytest on them; passed iff pytest exits 0."""
    if not tests:
        raise ValueError("no tests to run")
    with tempfile.TemporaryDirectory(prefix="synod-verify-") as root:
        base = Path(root)
        work, guard = base / "work", base / "guard"
        work.mkdir()
        guard.mkdir()
        for path, content in {**files, **tests}.items():
            safe = normalise_path(path)
            if safe is None:
                raise ValueError(f"refusing to write {path!r} outside the workspace")
            target = work / safe
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        (guard / "sitecustomize.py").write_text(_NO_NETWORK, encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": f"{guard}{os.pathsep}{work}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": str(base),
            # The service's installed pytest plugins are not the project's: loading
            # them all took 6 s of a 7 s run on a busy 2-core host, against 1 s
            # without. A project that needs one names it (`pytest_plugins` in a
            # conftest), which still loads.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        report = base / "report.xml"
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        argv += [f"--junitxml={report}", str(work)]
        try:
            done = subprocess.run(
                argv,
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                preexec_fn=lambda: _limits(cpu_s, memory_bytes),
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout if isinstance(exc.stdout, str) else ""
            return Verdict(False, None, f"{out}\ntimed out after {timeout_s:g} s")
        output = (done.stdout + done.stderr)[-20_000:]
        found = _read_report(report)
        if found is None:
            return Verdict(False, done.returncode, output)
        passed, failed, skipped = found
        return Verdict(done.returncode == 0, done.returncode, output, True, passed, failed, skipped)
