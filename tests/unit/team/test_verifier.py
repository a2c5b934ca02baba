"""The verifier runs a project's tests in an isolated subprocess."""

from __future__ import annotations

import pytest

from synod.team.verifier import verify

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
        "    with pytest.raises(OSError, match='disabled in the verifier'):\n"
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
