"""Synod's Avro read by Apache Avro for Java and by hamba/avro for Go, run for real.

Each reader is the example in docs/wire.md (examples/avro-java, examples/avro-go),
built here with mvn / go and run on one value of every message type written by
Synod's codec. `make foreign-readers`; not part of `make test` (builds take
minutes from cold caches). Skips only when mvn or go is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from synod.wire import Codec, Envelope
from synod.wire.examples import example_envelopes

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas" / "avro"
_CONTROL = '{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}'
_CONTROL_FP = fingerprint(
    to_parsing_canonical_form(fastavro.parse_schema(json.loads(_CONTROL))), "CRC-64-AVRO"
)


def _values(tmp: Path) -> tuple[list[Path], list[Envelope]]:
    codec = Codec()
    envelopes = example_envelopes()
    files = []
    for i, envelope in enumerate(envelopes):
        path = tmp / f"{i:02d}-{envelope.type}.bin"
        path.write_bytes(codec.encode_avro(envelope))
        files.append(path)
    return files, envelopes


def _expected(files: list[Path], envelopes: list[Envelope]) -> list[list[str]]:
    return [
        [f.name, e.type, e.message_id, e.task_id or "null", e.sender.role]
        for f, e in zip(files, envelopes, strict=True)
    ]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def java_reader() -> list[str]:
    if shutil.which("mvn") is None or shutil.which("java") is None:
        pytest.skip("mvn or java is not installed (apt-get install maven)")
    project = ROOT / "examples" / "avro-java"
    built = _run(["mvn", "-q", "-B", "package"], project)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    classpath = (project / "target" / "classpath.txt").read_text().strip()
    return [
        "java",
        "-cp",
        f"{project / 'target' / 'classes'}{os.pathsep}{classpath}",
        "synod.example.ReadSynod",
    ]


@pytest.fixture(scope="module")
def go_reader(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if shutil.which("go") is None:
        pytest.skip("go is not installed (https://go.dev/doc/install)")
    binary = tmp_path_factory.mktemp("go") / "readsynod"
    built = _run(["go", "build", "-o", str(binary), "."], ROOT / "examples" / "avro-go")
    assert built.returncode == 0, built.stderr[-3000:]
    return [str(binary)]


@pytest.mark.parametrize("reader", ["java_reader", "go_reader"])
def test_reads_every_message_type(
    reader: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    cmd: list[str] = request.getfixturevalue(reader)
    files, envelopes = _values(tmp_path)
    assert len({e.type for e in envelopes}) >= 20
    done = _run([*cmd, str(SCHEMAS), *map(str, files)], ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    got = [line.split("\t") for line in done.stdout.splitlines()]
    assert got == _expected(files, envelopes)


@pytest.mark.parametrize("reader", ["java_reader", "go_reader"])
def test_refuses_a_json_edge_record(
    reader: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    cmd: list[str] = request.getfixturevalue(reader)
    path = tmp_path / "edge.json"
    path.write_bytes(Codec.encode_json(example_envelopes()[0]))
    done = _run([*cmd, str(SCHEMAS), str(path)], ROOT)
    assert done.returncode != 0
    assert "single-object" in done.stderr


def test_hamba_avro_fingerprints_differ_from_the_wire(go_reader: list[str]) -> None:
    """Why the Go example indexes schemas by file name: hamba/avro keeps logicalType
    in its Parsing Canonical Form, and every envelope has a timestamp field. If this
    fails, hamba/avro changed; docs/wire.md's note on it must change too."""
    done = _run([*go_reader, "-fingerprints", str(SCHEMAS)], ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    (_, control_fp), *pairs = [line.split("\t") for line in done.stdout.splitlines()]
    assert control_fp == _CONTROL_FP  # the byte order is the wire's
    assert len(pairs) == len(list(SCHEMAS.glob("history/*/*.avsc"))) > 20
    assert [name for name, computed in pairs if name == computed] == []


AVRO_PY_PIN = "avro==1.12.2"
_AVRO_PY_FINGERPRINTS = """
import sys
from pathlib import Path
import avro.schema
control = avro.schema.parse(sys.argv[2])  # no logical type: must agree with fastavro
print("control", bytes(control.fingerprint("CRC-64-AVRO")).hex(), sep="\\t")
for path in sorted(Path(sys.argv[1]).glob("history/*/*.avsc")):
    schema = avro.schema.parse(path.read_text())
    print(path.stem, bytes(schema.fingerprint("CRC-64-AVRO")).hex(), sep="\\t")
"""


def test_apache_avro_python_fingerprints_differ_from_the_wire() -> None:
    """docs/wire.md's note: Apache Avro for Python 1.12 keeps {"type": "long"} for a
    field with a logical type in its canonical form. In a venv of its own (.cache)."""
    venv = ROOT / ".cache" / "avro-py-venv"
    python = venv / "bin" / "python"
    stamp = venv / f".installed-{AVRO_PY_PIN}"
    if not stamp.exists():
        made = _run(["python3", "-m", "venv", str(venv)], ROOT)
        assert made.returncode == 0, made.stderr
        got = _run([str(python), "-m", "pip", "install", "--quiet", AVRO_PY_PIN], ROOT)
        if got.returncode != 0:
            pytest.skip(f"cannot install {AVRO_PY_PIN}: {got.stderr[-500:]}")
        stamp.touch()
    done = _run([str(python), "-c", _AVRO_PY_FINGERPRINTS, str(SCHEMAS), _CONTROL], ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    (_, control_fp), *pairs = [line.split("\t") for line in done.stdout.splitlines()]
    assert control_fp == _CONTROL_FP  # the byte order is the wire's
    assert len(pairs) == len(list(SCHEMAS.glob("history/*/*.avsc"))) > 20
    assert [name for name, computed in pairs if name == computed] == []
