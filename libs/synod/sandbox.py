"""Run a project's tests on a materialised workspace, isolated (the verifier).

With bubblewrap (`bwrap`, Debian's `bubblewrap` package) the tests run in
their own user, network, PID, IPC, UTS and cgroup namespaces: no network
at all (only a loopback that is down), a read-only view of the system's
/usr, /lib and the Python install and nothing else of the host (no home,
no checkout, no credentials file), a private size-bounded tmpfs as the
workspace and as /tmp, an empty environment (no API key, no SCRAM
password), all capabilities dropped. CPU time, address space and file size
are bounded by rlimits set before exec; the number of processes by a
`pids` cgroup when the host lets us make one (RLIMIT_NPROC does not bind
root), else by RLIMIT_NPROC. The wall-clock timeout kills the sandbox's
PID 1 and so every process in it.

What it does not protect against: a kernel exploit (namespaces share the
host kernel), CPU time spent within the limits starving a busy host, side
channels, and reading what the Python install and /usr hold. Without a
pids cgroup and running as root a fork bomb is bounded only by the timeout.

`SYNOD_SANDBOX`: `auto` (bwrap when it works here, else the weak guard
below with a warning), `bwrap` (required: fail clearly without it),
`rlimits` (the weak guard: rlimits and a `sitecustomize` that blocks
internet sockets; code under test can undo it, so it guards against
accidents, not against hostile code).
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from synod.core.workspace import normalise_path
from synod.errors import ConfigError

log = logging.getLogger("synod.sandbox")

# Inside the sandbox: the workspace and where the report goes.
_WORKSPACE = "/workspace"
_OUT = "/report"
_TMPFS_BYTES = 256 << 20

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


def _limits(cpu_s: int, memory_bytes: int, processes: int | None = None) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
    if processes is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


def sandbox_mode() -> str:
    mode = os.environ.get("SYNOD_SANDBOX", "auto").strip() or "auto"
    if mode not in ("auto", "bwrap", "rlimits"):
        raise ConfigError(f"SYNOD_SANDBOX={mode}: expected auto, bwrap or rlimits")
    return mode


@functools.cache
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot isolate here, or None when it can (checked once)."""
    path = shutil.which("bwrap")
    if path is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    probe = [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not run: {exc}"
    if done.returncode != 0:
        return (
            f"bwrap cannot make namespaces here ({done.stderr.strip()[:200]}): user namespaces "
            "may be off (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone)"
        )
    return None


def _pids_cgroup(limit: int) -> Path | None:
    """A fresh `pids` cgroup with `pids.max`, or None when the host does not let us."""
    for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        if not (root / "cgroup.procs").exists():
            continue
        if root == Path("/sys/fs/cgroup") and "pids" not in _read(root / "cgroup.controllers"):
            continue
        group = root / f"synod-sandbox-{uuid.uuid4().hex[:12]}"
        try:
            group.mkdir()
            (group / "pids.max").write_text(str(limit))
        except OSError:
            _remove_cgroup(group)
            continue
        return group
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _remove_cgroup(group: Path) -> None:
    for _ in range(50):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            # Its last processes are still being reaped after a kill.
            subprocess.run(["sleep", "0.1"], check=False)


def _system_binds() -> list[str]:
    """Read-only binds of what a Python test run needs of the host, and nothing more."""
    args: list[str] = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        if Path(etc).exists():
            args += ["--ro-bind", etc, etc]
    prefixes = {str(Path(sys.base_prefix).resolve()), str(Path(sys.prefix).resolve())}
    for prefix in sorted(prefixes):
        if not prefix.startswith(("/usr/", "/bin/", "/lib")):
            args += ["--ro-bind", prefix, prefix]
    if Path(sys.prefix).resolve() != Path(sys.prefix):
        args += ["--ro-bind", str(Path(sys.prefix).resolve()), sys.prefix]
    return args


def _bwrap_argv(src: Path, out: Path, pytest_args: list[str]) -> list[str]:
    bwrap = shutil.which("bwrap") or "bwrap"
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": _WORKSPACE,
        "PYTHONPATH": _WORKSPACE,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "TMPDIR": "/tmp",
    }
    argv = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--clearenv",
    ]
    for name, value in env.items():
        argv += ["--setenv", name, value]
    # The tmpfs first, the binds after: bwrap mounts in order, and a venv or
    # Python that lives under /tmp (a CI clone there) must stay visible on top.
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(_TMPFS_BYTES), "--tmpfs", "/tmp"]
    argv += ["--size", str(_TMPFS_BYTES), "--tmpfs", _WORKSPACE]
    argv += _system_binds()
    argv += ["--ro-bind", str(src), "/tmp/.project", "--bind", str(out), _OUT]
    argv += ["--chdir", _WORKSPACE, "--", sys.executable, "-c", _LAUNCH, *pytest_args]
    return argv


# Inside: copy the project into the private tmpfs, then run pytest there.
_LAUNCH = (
    "import shutil, sys, pytest\n"
    "shutil.copytree('/tmp/.project', '/workspace', dirs_exist_ok=True)\n"
    "sys.exit(pytest.main(sys.argv[1:]))\n"
)


def verify(
    files: dict[str, str],
    tests: dict[str, str],
    *,
    timeout_s: float = 60.0,
    cpu_s: int = 60,
    memory_bytes: int = 1 << 30,
    processes: int = 64,
) -> Verdict:
    """Write `files` and `tests`, run pytest on them; passed iff pytest exits 0."""
    if not tests:
        raise ValueError("no tests to run")
    mode = sandbox_mode()
    problem = bwrap_problem() if mode != "rlimits" else None
    if mode == "bwrap" and problem is not None:
        raise ConfigError(
            f"SYNOD_SANDBOX=bwrap, but {problem}; or SYNOD_SANDBOX=auto for the weaker rlimit guard"
        )
    isolated = mode != "rlimits" and problem is None
    if not isolated and mode == "auto":
        _warn_weak(problem or "")
    with tempfile.TemporaryDirectory(prefix="synod-verify-") as root:
        base = Path(root)
        work, guard, out = base / "work", base / "guard", base / "out"
        for d in (work, guard, out):
            d.mkdir()
        for path, content in {**files, **tests}.items():
            safe = normalise_path(path)
            if safe is None:
                raise ValueError(f"refusing to write {path!r} outside the workspace")
            target = work / safe
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        pytest_args = ["-q", "-p", "no:cacheprovider"]
        group = _pids_cgroup(processes) if isolated else None
        if isolated:
            argv = _bwrap_argv(
                work, out, [*pytest_args, f"--junitxml={_OUT}/report.xml", _WORKSPACE]
            )
            env: dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            cwd = base
        else:
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
            argv = [sys.executable, "-m", "pytest", *pytest_args]
            argv += [f"--junitxml={out / 'report.xml'}", str(work)]
            cwd = work
        try:
            done = subprocess.run(
                argv,
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                preexec_fn=_preexec(cpu_s, memory_bytes, processes, group),
            )
        except subprocess.TimeoutExpired as exc:
            out_text = exc.stdout if isinstance(exc.stdout, str) else ""
            return Verdict(False, None, f"{out_text}\ntimed out after {timeout_s:g} s")
        finally:
            if group is not None:
                _remove_cgroup(group)
        output = (done.stdout + done.stderr)[-20_000:]
        found = _read_report(out / "report.xml")
        if found is None:
            return Verdict(False, done.returncode, output)
        passed, failed, skipped = found
        return Verdict(done.returncode == 0, done.returncode, output, True, passed, failed, skipped)


def _preexec(
    cpu_s: int, memory_bytes: int, processes: int, group: Path | None
) -> Callable[[], None]:
    def enter() -> None:
        if group is not None:
            # Before exec: bwrap and everything it starts count against pids.max.
            (group / "cgroup.procs").write_text(str(os.getpid()))
            _limits(cpu_s, memory_bytes)
        else:
            _limits(cpu_s, memory_bytes, processes)

    return enter


@functools.cache
def _warn_weak(problem: str) -> None:
    log.warning(
        "sandbox_weak: project tests run without bubblewrap, with rlimits only "
        "(not a sandbox against hostile code); set SYNOD_SANDBOX=bwrap to require it",
        extra={"problem": problem},
    )


def isolation() -> str:
    """What `verify` uses here now: `bwrap` or `rlimits` (for logs and the juror's report)."""
    mode = sandbox_mode()
    return "bwrap" if mode != "rlimits" and bwrap_problem() is None else "rlimits"
