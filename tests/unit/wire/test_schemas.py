"""schemas/ is generated from the models, and every schema version stays
backward and forward compatible with every earlier one."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from synod.wire import BODY_TYPES
from synod.wire.avro import SchemaStore, avro_schema, schema_fingerprint, schemas_dir
from synod.wire.codec import Codec
from synod.wire.compat import full_compatibility_problems, problems
from synod.wire.examples import example_envelopes
from synod.wire.schemagen import stale_files

ROOT = schemas_dir()
HISTORY = sorted((ROOT / "avro" / "history").glob("*/*.avsc"))


def test_committed_schemas_equal_the_generated_ones() -> None:
    stale = stale_files(ROOT)
    assert stale == [], f"run `make schemas` and commit: {stale}"


def test_every_type_has_its_current_version_in_history() -> None:
    for type_name in BODY_TYPES:
        fp = schema_fingerprint(avro_schema(type_name)).hex()
        assert (ROOT / "avro" / "history" / type_name / f"{fp}.avsc").exists()


def test_the_store_takes_fingerprints_from_names_only_where_they_are_right(
    tmp_path: Path,
) -> None:
    """The store reads fingerprints from history file names (computing them is slow);
    they match what is computed, and a file not named by one is fingerprinted."""
    store = SchemaStore(ROOT)
    for type_name in BODY_TYPES:
        assert store.current_fingerprint(type_name) == schema_fingerprint(avro_schema(type_name))
    for path in HISTORY:
        known = store.lookup(bytes.fromhex(path.stem))
        assert known is not None
        assert known.type_name == path.parent.name
    vote = avro_schema("Vote")
    hist = tmp_path / "avro" / "history" / "Vote"
    hist.mkdir(parents=True)
    (hist / "current.avsc").write_text(json.dumps(vote))
    other = SchemaStore(tmp_path)
    assert other.current_fingerprint("Vote") == schema_fingerprint(vote)


@pytest.mark.parametrize("path", HISTORY, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_history_version_is_compatible_with_current(path: Path) -> None:
    old = json.loads(path.read_text())
    assert schema_fingerprint(old).hex() == path.stem, "history files are named by fingerprint"
    new = avro_schema(path.parent.name)
    assert full_compatibility_problems(old, new) == []


@pytest.mark.parametrize("path", HISTORY, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_history_version_data_resolves_both_ways(path: Path) -> None:
    """A second opinion from fastavro's own resolution, on real data."""
    type_name = path.parent.name
    old = parse_schema(json.loads(path.read_text()))
    new = parse_schema(avro_schema(type_name))
    [example] = [e for e in example_envelopes() if e.type == type_name]
    record = example.model_dump(mode="python")
    for writer, reader in ((old, new), (new, old)):
        buf = io.BytesIO()
        schemaless_writer(buf, writer, record)
        buf.seek(0)
        assert schemaless_reader(buf, writer, reader)["message_id"] == example.message_id


def test_codec_reads_messages_written_with_a_history_version(tmp_path: Path) -> None:
    """A reader resolves an old fingerprint from history and reads with the current schema."""
    current = avro_schema("Vote")
    old = copy.deepcopy(current)
    body = next(f for f in old["fields"] if f["name"] == "body")
    body["type"]["fields"] = [f for f in body["type"]["fields"] if f["name"] != "rationale"]
    hist = tmp_path / "avro" / "history" / "Vote"
    hist.mkdir(parents=True)
    (hist / f"{schema_fingerprint(old).hex()}.avsc").write_text(json.dumps(old))
    from synod.wire.avro import SchemaStore

    codec = Codec(SchemaStore(tmp_path))
    [vote] = [e for e in example_envelopes() if e.type == "Vote"]
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + schema_fingerprint(old))
    schemaless_writer(buf, parse_schema(old), vote.model_dump(mode="python"))
    decoded = codec.decode(buf.getvalue())
    assert decoded.body.rationale == ""  # the field the old writer lacked takes its default
    assert decoded.body.choice == vote.body.choice


# ------------------------------------------------ the checker can say no


def _vote_schema() -> dict[str, Any]:
    return copy.deepcopy(avro_schema("Vote"))


def _body_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    body = next(f for f in schema["fields"] if f["name"] == "body")
    fields: list[dict[str, Any]] = body["type"]["fields"]
    return fields


def test_adding_a_field_with_a_default_is_compatible() -> None:
    old, new = _vote_schema(), _vote_schema()
    _body_fields(new).append({"name": "weight", "type": "double", "default": 1.0})
    assert full_compatibility_problems(old, new) == []


def test_adding_a_required_field_breaks_backward_compatibility() -> None:
    old, new = _vote_schema(), _vote_schema()
    _body_fields(new).append({"name": "weight", "type": "double"})
    found = full_compatibility_problems(old, new)
    assert any("backward" in p and "body.weight" in p for p in found)


def test_removing_a_required_field_breaks_forward_compatibility() -> None:
    old, new = _vote_schema(), _vote_schema()
    new_body = _body_fields(new)
    new_body[:] = [f for f in new_body if f["name"] != "voter"]
    found = full_compatibility_problems(old, new)
    assert any("forward" in p and "body.voter" in p for p in found)


def test_changing_a_type_is_incompatible_but_promotion_reads_one_way() -> None:
    old, new = _vote_schema(), _vote_schema()
    next(f for f in _body_fields(new) if f["name"] == "voter")["type"] = "long"
    assert full_compatibility_problems(old, new)
    assert problems("int", "long") == []
    assert problems("long", "int") != []


def test_fingerprint_is_crc64_avro_of_the_canonical_form() -> None:
    """Checked against the Rabin algorithm as the Avro specification gives it."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)

    def rabin(data: bytes) -> int:
        fp = empty
        for byte in data:
            fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
        return fp

    from synod.wire.avro import canonical_form

    schema = avro_schema("Heartbeat")
    expected = rabin(canonical_form(schema).encode()).to_bytes(8, "little")
    assert schema_fingerprint(schema) == expected
