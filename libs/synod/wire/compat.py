"""Avro schema compatibility, by the resolution rules of the Avro specification.

`problems(writer, reader)` lists why data written with `writer` could not be
read with `reader` (empty: compatible). Backward compatibility of a new schema
is `problems(old, new) == []` (new code reads old data); forward compatibility
is `problems(new, old) == []` (old code reads new data). We need both, because
during a rolling upgrade old and new services read each other's messages.

Covers what our generated schemas use: records, primitives, arrays, maps,
null-unions and logical types.
"""

from __future__ import annotations

from typing import Any

# Writer type -> reader types it may be promoted to (Avro spec, "Schema Resolution").
_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"]) if isinstance(schema["type"], str) else _kind(schema["type"])
    return str(schema)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Resolver:
    def __init__(self) -> None:
        self.writer_named: dict[str, Any] = {}
        self.reader_named: dict[str, Any] = {}

    def _deref(self, schema: Any, named: dict[str, Any]) -> Any:
        if isinstance(schema, str) and _short(schema) in named:
            return named[_short(schema)]
        if isinstance(schema, dict) and schema.get("type") == "record":
            named.setdefault(_short(schema["name"]), schema)
        return schema

    def check(self, writer: Any, reader: Any, path: str) -> list[str]:
        writer = self._deref(writer, self.writer_named)
        reader = self._deref(reader, self.reader_named)
        wk, rk = _kind(writer), _kind(reader)
        if wk == "union":
            # Every branch the writer may have used must be readable.
            out: list[str] = []
            for branch in writer:
                out += self.check(branch, reader, path)
            return out
        if rk == "union":
            for branch in reader:
                if not self.check(writer, branch, path):
                    return []
            return [f"{path}: writer type {wk} matches no branch of the reader's union"]
        if wk == "record" and rk == "record":
            return self._records(writer, reader, path)
        if wk == "array" and rk == "array":
            return self.check(writer["items"], reader["items"], f"{path}[]")
        if wk == "map" and rk == "map":
            return self.check(writer["values"], reader["values"], f"{path}{{}}")
        if wk == rk or rk in _PROMOTIONS.get(wk, ()):
            wl = writer.get("logicalType") if isinstance(writer, dict) else None
            rl = reader.get("logicalType") if isinstance(reader, dict) else None
            if wl != rl:
                return [f"{path}: logical type changed from {wl} to {rl}"]
            return []
        return [f"{path}: writer type {wk} cannot be read as {rk}"]

    def _records(self, writer: dict[str, Any], reader: dict[str, Any], path: str) -> list[str]:
        if _short(writer["name"]) != _short(reader["name"]):
            return [f"{path}: record {writer['name']} cannot be read as {reader['name']}"]
        w_fields = {f["name"]: f for f in writer["fields"]}
        out: list[str] = []
        for field in reader["fields"]:
            sub = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] in w_fields:
                out += self.check(w_fields[field["name"]]["type"], field["type"], sub)
            elif "default" not in field:
                out.append(
                    f"{sub}: the reader needs it, the writer lacks it, and it has no default"
                )
        return out


def problems(writer: Any, reader: Any) -> list[str]:
    """Why `reader` cannot read data written with `writer`; empty if it can."""
    return _Resolver().check(writer, reader, "")


def full_compatibility_problems(old: Any, new: Any) -> list[str]:
    """Problems in either direction between two versions of one schema."""
    backward = [f"backward (new reads old): {p}" for p in problems(old, new)]
    forward = [f"forward (old reads new): {p}" for p in problems(new, old)]
    return backward + forward
