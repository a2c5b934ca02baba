"""The reloader's change detection and its process restart, on real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from synod.dev.devreload import changed, main, package_roots, snapshot


def test_changed_reports_added_removed_and_modified() -> None:
    before = {"a.py": 1.0, "b.py": 1.0, "c.py": 1.0}
    after = {"a.py": 1.0, "b.py": 2.0, "d.py": 1.0}
    assert changed(before, after) == ["b.py", "c.py", "d.py"]
    assert changed(before, dict(before)) == []


def test_snapshot_sees_only_python_sources(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "data.json").write_text("{}")
    first = snapshot([tmp_path])
    assert list(first) == [str(tmp_path / "pkg" / "m.py")]
    os.utime(tmp_path / "pkg" / "m.py", (1, 1))
    assert changed(first, snapshot([tmp_path])) == [str(tmp_path / "pkg" / "m.py")]


def test_watched_roots_include_the_synod_package() -> None:
    roots = package_roots()
    assert any((r / "dev" / "devreload.py").exists() for r in roots)


def test_usage_error_without_a_module() -> None:
    assert main([]) == 2


def test_child_exit_code_is_the_reloaders_exit_code() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "synod.dev.devreload", "json.tool", "/nonexistent-file"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0


def test_a_source_change_restarts_the_child_in_place(tmp_path: Path) -> None:
    pkg = tmp_path / "reloadme"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    main_py = pkg / "__main__.py"
    main_py.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SYNOD_RELOAD_PACKAGES": "reloadme"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "synod.dev.devreload", "reloadme"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        os.utime(main_py, (1, 1))
        # Bounded by the child's 60 s sleep: without a restart no second line comes.
        assert proc.stdout.readline().strip() == "started"
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.stderr is not None
    assert "restarting" in proc.stderr.read()
