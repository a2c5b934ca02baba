"""Avro schemas of the wire models, their fingerprints, and the schema store.

Schemas are generated from the pydantic models (`avro_schema`) so the two can
never drift; `make schemas` writes them to schemas/avro/ and a test holds the
committed files equal to the generated ones.

Readers resolve the writer's schema by its fingerprint (Avro single-object
encoding). The store therefore keeps every version ever released, under
schemas/avro/history/<Type>/<fingerprint>.avsc, and reads old data with the
current schema through Avro schema resolution. Nothing in history is removed.
"""

from __future__ import annotations

import functools
import json
import os
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form
from pydantic import BaseModel

from synod.wire.messages import BODY_TYPES, envelope_class, new_message_id, utc_now

NAMESPACE = "synod"
AvroSchema = Any  # JSON-shaped: str | dict | list
_GENERATED: tuple[Any, ...] = (new_message_id, utc_now)


def schemas_dir() -> Path:
    """schemas/ of this checkout, or SYNOD_SCHEMA_DIR (images copy it elsewhere)."""
    env = os.environ.get("SYNOD_SCHEMA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "schemas"


# ---------------------------------------------------------------- generation


def _is_optional(annotation: Any) -> tuple[bool, Any]:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return True, args[0]
        raise TypeError(f"only X | None unions map to Avro here, not {annotation}")
    return False, annotation


def _avro_type(annotation: Any, named: set[str]) -> AvroSchema:
    if get_origin(annotation) is typing.Annotated:  # constraints (Long) say nothing to Avro
        return _avro_type(get_args(annotation)[0], named)
    optional, inner = _is_optional(annotation)
    if optional:
        return ["null", _avro_type(inner, named)]
    origin = get_origin(inner)
    if inner is str or origin is Literal:
        # Literals are strings, not Avro enums: adding a symbol to an enum breaks
        # old readers, adding an allowed string does not.
        return "string"
    if inner is bool:
        return "boolean"
    if inner is int:
        return "long"
    if inner is float:
        return "double"
    if inner is bytes:
        return "bytes"
    if inner is datetime:
        return {"type": "long", "logicalType": "timestamp-micros"}
    if origin is list:
        (item,) = get_args(inner)
        return {"type": "array", "items": _avro_type(item, named)}
    if origin is dict:
        key, value = get_args(inner)
        if key is not str:
            raise TypeError(f"Avro maps need string keys, not {key}")
        return {"type": "map", "values": _avro_type(value, named)}
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return _record(inner, inner.__name__, named)
    raise TypeError(f"no Avro mapping for {annotation!r}")


def _avro_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, bytes):
        return value.decode("latin-1")  # Avro's JSON form of bytes
    return value


def _record(model: type[BaseModel], name: str, named: set[str]) -> AvroSchema:
    full = f"{NAMESPACE}.{name}"
    if full in named:
        return full  # Avro defines a named type once, then refers to it by name
    named.add(full)
    fields = []
    for field_name, info in model.model_fields.items():
        avro_t = _avro_type(info.annotation, named)
        field: dict[str, Any] = {"name": field_name, "type": avro_t}
        if info.description:
            field["doc"] = info.description
        # Fresh ids and timestamps default in Python, but an Avro default must be
        # one fixed value: such fields are simply required in the schema.
        generated = info.default_factory in _GENERATED
        if not info.is_required() and not generated:
            default = _avro_default(info.get_default(call_default_factory=True))
            if isinstance(avro_t, list) and default is not None:
                # A union's default must match its first branch.
                field["type"] = [avro_t[1], "null"]
            field["default"] = default
        fields.append(field)
    record: dict[str, Any] = {"type": "record", "name": name, "namespace": NAMESPACE}
    if model.__doc__ and not name.startswith("Envelope"):
        record["doc"] = " ".join(model.__doc__.split())
    record["fields"] = fields
    return record


def avro_schema(type_name: str) -> dict[str, Any]:
    """The Avro schema of the envelope of one message type, e.g. `StepCompleted`.

    The top-level record is named after the type (synod.StepCompletedEnvelope)
    so each message type has its own fingerprint and evolves on its own.
    """
    cls = envelope_class(type_name)
    schema = _record(cls, f"{type_name}Envelope", set())
    assert isinstance(schema, dict)
    return schema


def canonical_form(schema: AvroSchema) -> str:
    return str(to_parsing_canonical_form(parse_schema(schema, _write_hint=False)))


def schema_fingerprint(schema: AvroSchema) -> bytes:
    """CRC-64-AVRO of the Parsing Canonical Form, little-endian, as on the wire."""
    return _fingerprint_of(canonical_form(schema))


# ---------------------------------------------------------------- the store


@dataclass(frozen=True)
class KnownSchema:
    type_name: str
    fingerprint: bytes
    writer: Any  # parsed schema of that version
    current: bool


@dataclass(frozen=True)
class _Loaded:
    by_fingerprint: dict[bytes, KnownSchema]
    readers: dict[str, Any]
    current_fp: dict[str, bytes]


@dataclass(frozen=True)
class _Current:
    readers: dict[str, Any]  # type -> parsed current schema
    canonical: dict[str, str]  # type -> its Parsing Canonical Form


@functools.cache
def _current() -> _Current:
    """The current schema of every type, generated from the models and parsed: the
    same for the whole process, so done once."""
    current = _Current({}, {})
    for type_name in BODY_TYPES:
        schema = avro_schema(type_name)
        current.readers[type_name] = parse_schema(schema)
        current.canonical[type_name] = canonical_form(schema)
    return current


def _fingerprint_of(canonical: str) -> bytes:
    return bytes.fromhex(str(fingerprint(canonical, "CRC-64-AVRO")))


def _named(path: Path) -> bytes | None:
    """The fingerprint a history file is named by (`make schemas` names them so, and
    tests/unit/wire/test_schemas.py holds every name to its content), if it is one."""
    stem = path.stem
    if len(stem) != 16 or stem.strip("0123456789abcdef"):
        return None
    return bytes.fromhex(stem)


@functools.cache
def _load(root: Path) -> _Loaded:
    """The current schemas and the released ones under `root`, once per root: history
    only grows with a new release of the code, never while a process runs.

    Fingerprints are taken from the history files' names, and a current schema's from
    the history file of the same canonical form, where there is one: fastavro's
    CRC-64 is pure Python (~2 ms a schema), and computing all of them made every
    process start (every service, every CLI call) ~0.5 s slower.
    """
    current = _current()
    history: list[tuple[str, bytes, Any]] = []  # (type, fingerprint, schema)
    by_canonical: dict[str, bytes] = {}
    history_dir = root / "avro" / "history"
    if history_dir.is_dir():
        for path in sorted(history_dir.glob("*/*.avsc")):
            type_name = path.parent.name
            if type_name not in BODY_TYPES:
                continue
            schema = json.loads(path.read_text())
            canonical = canonical_form(schema)
            fp = _named(path) or _fingerprint_of(canonical)
            by_canonical[canonical] = fp
            history.append((type_name, fp, schema))
    loaded = _Loaded({}, current.readers, {})
    for type_name in BODY_TYPES:
        canonical = current.canonical[type_name]
        fp = by_canonical.get(canonical) or _fingerprint_of(canonical)
        loaded.current_fp[type_name] = fp
        reader = current.readers[type_name]
        loaded.by_fingerprint[fp] = KnownSchema(type_name, fp, reader, True)
    for type_name, fp, schema in history:
        if fp not in loaded.by_fingerprint:
            loaded.by_fingerprint[fp] = KnownSchema(type_name, fp, parse_schema(schema), False)
    return loaded


class SchemaStore:
    """Resolves fingerprints to writer schemas; reads with the current schema.

    Cheap to build: every store of a root shares one parse of its schemas (read-only),
    so a `Codec()` made per call costs nothing. It did cost a full parse (0.5-2 s of
    CPU) and stalled an event loop that decoded each poll with a fresh one.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or schemas_dir()
        loaded = _load(self.root.resolve())
        self._by_fingerprint = loaded.by_fingerprint
        self._readers = loaded.readers
        self._current_fp = loaded.current_fp

    def current_fingerprint(self, type_name: str) -> bytes:
        return self._current_fp[type_name]

    def reader(self, type_name: str) -> Any:
        return self._readers[type_name]

    def lookup(self, fp: bytes) -> KnownSchema | None:
        return self._by_fingerprint.get(fp)

    def known(self) -> list[KnownSchema]:
        return list(self._by_fingerprint.values())
