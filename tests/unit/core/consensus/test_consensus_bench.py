"""The benchmark script runs and reports every cell (its numbers are not judged here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[4] / "bench" / "consensus.py"


def test_quick_benchmark_prints_one_json_document_with_every_cell(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when run as a script: bench/ first on sys.path, for bench/machine.py.
    monkeypatch.syspath_prepend(str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("synod_bench_consensus", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module runs.
    monkeypatch.setitem(sys.modules, spec.name, bench)
    spec.loader.exec_module(bench)

    assert bench.main(["--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["params"]["proposals"] == 100
    assert {"cores", "cpu", "memory_gb", "python", "synod", "libraries"} <= report["machine"].keys()
    cells = {(c["model"], c["p"], c["n"]) for c in report["cells"]}
    assert cells == {
        (model, p, n)
        for model in ("independent", "correlated")
        for p in (0.1, 0.2, 0.3)
        for n in (3, 5, 7, 15, 31)
    }
    for cell in report["cells"]:
        for method in ("single", "majority", "exact", "adaptive"):
            assert 0.0 <= cell[method]["accuracy"] <= 1.0
            assert 1.0 <= cell[method]["calls"] <= cell["n"]
        assert cell["majority"]["calls"] == cell["n"]
        # Not a number to tune: stopping once the outcome is settled cannot change it.
        assert cell["exact"]["outcome_changes"] == 0
    assert set(report["summary"]["targets"]) == {
        "accuracy_within_0.5pp_of_majority",
        "calls_at_31_at_most_40pct",
        "calls_at_n_le_7_at_most_exact",
        "exact_changes_no_outcome",
    }
