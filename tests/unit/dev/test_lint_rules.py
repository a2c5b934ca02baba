"""`make lint`'s import rules fail on a broken scratch copy of the tree and pass on this one.

Each test copies libs/synod and pyproject.toml into tmp_path, maybe breaks a
rule there, and runs `lint-imports` (import-linter, the check `make lint`
runs) on the copy only: PYTHONPATH puts the copy ahead of the editable install.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {c["id"]: c["name"] for c in CONFIG["contracts"]}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def scratch_tree(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "libs" / "synod",
        tmp_path / "libs" / "synod",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def append_line(tree: Path, module: str, line: str) -> None:
    path = tree / "libs" / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def lint_imports(tree: Path) -> tuple[int, dict[str, str], str]:
    """Exit status, each contract's verdict by id (KEPT or BROKEN), and the output."""
    env = {**os.environ, "PYTHONPATH": str(tree / "libs")}
    run = subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    verdicts = {}
    for cid, name in CONTRACTS.items():
        found = re.search(rf"^{re.escape(name)} (KEPT|BROKEN)$", output, re.MULTILINE)
        assert found, f"no verdict for contract {name!r} in:\n{output}"
        verdicts[cid] = found.group(1)
    return run.returncode, verdicts, output


def test_make_lint_runs_the_import_rules() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint_recipe = re.search(r"^lint: .*?\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert lint_recipe is not None
    assert "lint-imports" in lint_recipe.group(1)
    assert "lint-imports --no-cache" in makefile


def test_the_unchanged_tree_keeps_every_contract(tmp_path: Path) -> None:
    code, verdicts, output = lint_imports(scratch_tree(tmp_path))
    assert verdicts == dict.fromkeys(CONTRACTS, "KEPT"), output
    assert code == 0, output


def test_a_core_importing_an_adapter_fails(tmp_path: Path) -> None:
    tree = scratch_tree(tmp_path)
    append_line(tree, "synod.core.consensus.machine", "from synod.transport import topics  # noqa")
    code, verdicts, output = lint_imports(tree)
    assert code != 0
    assert verdicts["layers"] == "BROKEN"
    assert verdicts["core-pure"] == "BROKEN"
    assert "synod.core.consensus.machine -> synod.transport" in output


def test_a_core_importing_an_io_library_fails(tmp_path: Path) -> None:
    tree = scratch_tree(tmp_path)
    append_line(tree, "synod.core.plan.bounds", "import aiokafka  # noqa")
    code, verdicts, output = lint_imports(tree)
    assert code != 0
    assert verdicts["core-pure"] == "BROKEN"
    assert "synod.core.plan.bounds -> aiokafka" in output


def test_a_new_cycle_fails(tmp_path: Path) -> None:
    # synod.cli.main imports synod.cli.output; the way back closes a circle inside
    # one layer, so only the cycle check can see it.
    tree = scratch_tree(tmp_path)
    append_line(tree, "synod.cli.output", "import synod.cli.main  # noqa")
    code, verdicts, output = lint_imports(tree)
    assert code != 0
    assert verdicts == {**dict.fromkeys(CONTRACTS, "KEPT"), "acyclic": "BROKEN"}, output


def test_one_role_importing_another_fails(tmp_path: Path) -> None:
    tree = scratch_tree(tmp_path)
    append_line(tree, "synod.roles.reviewer.service", "import synod.roles.worker.service  # noqa")
    code, verdicts, output = lint_imports(tree)
    assert code != 0
    assert verdicts["roles-independent"] == "BROKEN"
    assert "synod.roles.reviewer.service -> synod.roles.worker.service" in output


def test_a_new_folder_must_be_given_a_layer(tmp_path: Path) -> None:
    tree = scratch_tree(tmp_path)
    (tree / "libs" / "synod" / "ordering").mkdir()
    (tree / "libs" / "synod" / "ordering" / "__init__.py").write_text('"""Unplaced."""\n')
    code, verdicts, output = lint_imports(tree)
    assert code != 0
    assert verdicts["layers"] == "BROKEN"
    assert "synod.ordering" in output


def test_the_core_contract_forbids_every_folder_but_the_allowed_ones() -> None:
    # A new folder of synod is forbidden to the cores until someone decides otherwise.
    (contract,) = [c for c in CONFIG["contracts"] if c["id"] == "core-pure"]
    folders = {
        p.stem if p.suffix == ".py" else p.name
        for p in (ROOT / "libs" / "synod").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    forbidden = {m.removeprefix("synod.") for m in contract["forbidden_modules"]}
    assert folders - forbidden == {"core", "wire", "errors", "ids"}


def test_every_folder_says_what_it_holds_and_what_it_may_import() -> None:
    # CONVENTIONS: a folder's __init__.py starts with one line saying both.
    missing = []
    for init in sorted((ROOT / "libs" / "synod").rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        first = doc.splitlines()[0] if doc else ""
        if "import" not in first:
            missing.append(f"{init.relative_to(ROOT)}: {first!r}")
    assert missing == []
