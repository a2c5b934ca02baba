"""The verifier runs a project's tests in an isolated subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from synod import sandbox
from synod.sandbox import verify

CODE = {"add.py": "def add(a, b):\n    return a + b\n"}


def test_passing_tests_pass() -> None:
    tests = {"test_add.py": "from add import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"}
    verdict = verify(CODE, tests, timeout_s=60)
    assert verdict.passed, verdict.output
    assert verdict.returncode == 0


def test_a_wrong_answer_fails() -> None:
    tests = {"test_add.py": "from add import add\n\ndef test_add():\n    assert add(2, 3) == 6\n"}
    verdict = verify(CODE, tests, timeout_s=60)
    assert not verdict.passed
    assert "assert 5 == 6" in verdict.output


def test_the_network_is_blocked() -> None:
    tests = {
        "test_net.py": "import socket, pytest\n\n"
        "def test_net():\n"
        "    with pytest.raises(OSError):\n"
        "        socket.create_connection(('127.0.0.1', 9))\n"
    }
    verdict = verify({}, tests, timeout_s=60)
    assert verdict.passed, verdict.output


def test_a_hanging_test_is_stopped_at_the_timeout() -> None:
    tests = {"test_hang.py": "import time\n\ndef test_hang():\n    time.sleep(600)\n"}
    verdict = verify({}, tests, timeout_s=3)
    assert not verdict.passed
    assert verdict.returncode is None


def test_a_path_outside_the_workspace_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the workspace"):
        verify({"../evil.py": ""}, {"test_x.py": "def test_x():\n    pass\n"})


def test_the_verdict_names_the_failing_tests_and_counts_the_rest() -> None:
    tests = {
        "tests/test_add.py": "from add import add\n\n\n"
        "def test_ok():\n    assert add(1, 1) == 2\n\n\n"
        "def test_bad():\n    assert add(1, 1) == 3\n\n\n"
        "class TestMore:\n    def test_worse(self):\n        assert add(0, 1) == 0\n",
    }
    verdict = verify(CODE, tests, timeout_s=60)
    assert not verdict.passed
    assert verdict.reported
    assert verdict.passed_count == 1
    assert verdict.failed == ("tests.test_add::test_bad", "tests.test_add.TestMore::test_worse")
    assert verdict.summary == (
        "1 passed, 2 failed: tests.test_add::test_bad, tests.test_add.TestMore::test_worse"
    )


def test_a_suite_that_does_not_import_fails_naming_the_module() -> None:
    tests = {"test_x.py": "import missing_module\n\n\ndef test_x():\n    pass\n"}
    verdict = verify(CODE, tests, timeout_s=60)
    assert not verdict.passed
    assert verdict.reported
    assert verdict.failed == ("test_x",)


def test_a_pytest_that_never_ran_the_tests_is_not_reported_as_failures() -> None:
    # A conftest that ends the process before pytest writes its report: no
    # verdict on the code, and the summary says why.
    tests = {
        "conftest.py": "import os\n\nos._exit(3)\n",
        "test_x.py": "def test_x():\n    pass\n",
    }
    verdict = verify(CODE, tests, timeout_s=60)
    assert not verdict.passed
    assert not verdict.reported
    assert verdict.summary.startswith("pytest did not run (exit 3)")


def test_installed_plugins_do_not_load_unless_the_project_names_them() -> None:
    probe = (
        "def test_probe(pytestconfig):\n"
        "    names = {n for n, _ in pytestconfig.pluginmanager.list_name_plugin()}\n"
        "    assert 'asyncio' not in names\n"
    )
    assert verify({}, {"test_probe.py": probe}, timeout_s=60).passed
    named = {
        "conftest.py": "pytest_plugins = ['pytest_asyncio.plugin']\n",
        # Passes only if the named plugin ran the coroutine on an event loop.
        "test_async.py": "import asyncio\n\nimport pytest\n\n\n"
        "@pytest.mark.asyncio\nasync def test_async():\n"
        "    loop = asyncio.get_running_loop()\n"
        "    assert await asyncio.sleep(0, result=loop) is loop\n",
    }
    verdict = verify({}, named, timeout_s=60)
    assert verdict.passed, verdict.output
    assert verdict.passed_count == 1


def test_the_weak_guard_blocks_internet_sockets_not_local_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without bubblewrap (SYNOD_SANDBOX=rlimits) a sitecustomize refuses the sockets;
    # in bwrap they may be made but reach nothing (test_hostile.py).
    monkeypatch.setenv("SYNOD_SANDBOX", "rlimits")
    tests = {
        "test_sockets.py": "import asyncio, socket, pytest\n\n\n"
        "def test_inet6():\n"
        "    with pytest.raises(OSError):\n"
        "        socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n\n\n"
        "def test_default_family():\n"
        "    with pytest.raises(OSError):\n"
        "        socket.socket()\n\n\n"
        "def test_an_event_loop_runs():\n"
        "    a, b = socket.socketpair()\n"
        "    a.close(); b.close()\n"
        "    assert asyncio.run(asyncio.sleep(0, result=7)) == 7\n"
    }
    verdict = verify({}, tests, timeout_s=60)
    assert verdict.passed, verdict.output
    assert verdict.passed_count == 3


def test_the_python_install_is_mounted_over_the_private_tmp() -> None:
    # bwrap mounts in order: a venv under /tmp (a CI clone there) bound before
    # the tmpfs on /tmp would be hidden, and no project test could start.
    argv = sandbox._bwrap_argv(Path("/src"), Path("/out"), [])
    tmpfs_at = next(i for i, a in enumerate(argv) if a == "--tmpfs" and argv[i + 1] == "/tmp")
    prefix = str(Path(sys.prefix).resolve())
    binds = [
        i for i, a in enumerate(argv) if a == "--ro-bind" and argv[i + 2] in (prefix, sys.prefix)
    ]
    if not prefix.startswith(("/usr/", "/bin/", "/lib")):
        assert binds, argv
    assert all(tmpfs_at < i for i in binds), argv
