"""Bytes <-> envelopes.

Internal topics carry Avro binary in the Avro single-object encoding: the
marker C3 01, the writer schema's 8-byte CRC-64-AVRO fingerprint, then the
body. Any Avro tool can read them with the schemas in schemas/avro/.

The edge topics synod.tasks and synod.results carry JSON too, so any Kafka
client can take part without our library. The decoder needs no header to tell
the two apart: Avro starts with the marker, JSON never does (C3 is not a valid
first byte of a UTF-8 JSON text). A bare JSON object with a `goal` and no
`type` is the short form of a TaskSubmitted (see docs/wire.md).

Whatever the bytes, `decode` either returns a validated envelope or raises
DecodeError with one of four reasons; it never raises anything else.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any, Literal

from fastavro import schemaless_reader, schemaless_writer
from pydantic import ValidationError

from synod.errors import DecodeError, EncodeError
from synod.wire.avro import SchemaStore
from synod.wire.messages import BODY_TYPES, Envelope, TaskSubmitted, envelope_class

AVRO_MARKER = b"\xc3\x01"
_HEADER_LEN = len(AVRO_MARKER) + 8

ContentType = Literal["avro", "json"]
# Values of the `content-type` Kafka header.
CONTENT_TYPE_HEADER = {"avro": "application/vnd.apache.avro+binary", "json": "application/json"}

# Kafka's default max.message.bytes is 1 MB; a bigger message would be refused
# by the broker anyway, later and with a vaguer error.
DEFAULT_MAX_BYTES = 1_000_000

# Stable ids for short-form tasks: a client that submits the same task id twice
# gets one task, not two.
_SHORT_FORM_NAMESPACE = uuid.UUID("5f0c0e6e-6f2a-4d39-9a53-7e0b5d0b7a11")
_ENVELOPE_FIELDS = frozenset(Envelope.model_fields) - {"body", "type"}


class Codec:
    def __init__(self, store: SchemaStore | None = None, max_bytes: int = DEFAULT_MAX_BYTES):
        self.store = store or SchemaStore()
        self.max_bytes = max_bytes

    # ------------------------------------------------------------ encode

    def encode(self, envelope: Envelope[Any], content_type: ContentType = "avro") -> bytes:
        data = self.encode_avro(envelope) if content_type == "avro" else self.encode_json(envelope)
        if len(data) > self.max_bytes:
            raise EncodeError(
                "oversized",
                f"{envelope.type} {envelope.message_id} is {len(data)} bytes; "
                f"the limit is {self.max_bytes}",
            )
        return data

    def encode_avro(self, envelope: Envelope[Any]) -> bytes:
        out = io.BytesIO()
        out.write(AVRO_MARKER)
        out.write(self.store.current_fingerprint(envelope.type))
        record = envelope.model_dump(mode="python")
        schemaless_writer(out, self.store.reader(envelope.type), record)
        return out.getvalue()

    @staticmethod
    def encode_json(envelope: Envelope[Any]) -> bytes:
        return envelope.model_dump_json().encode()

    # ------------------------------------------------------------ decode

    def decode(self, data: bytes) -> Envelope[Any]:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError("undecodable", f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) > self.max_bytes:
            raise DecodeError(
                "oversized", f"message is {len(data)} bytes; the limit is {self.max_bytes}"
            )
        if data.startswith(AVRO_MARKER):
            return self._decode_avro(data)
        return self._decode_json(data)

    def content_type_of(self, data: bytes) -> ContentType:
        return "avro" if data.startswith(AVRO_MARKER) else "json"

    def _decode_avro(self, data: bytes) -> Envelope[Any]:
        if len(data) < _HEADER_LEN:
            raise DecodeError("undecodable", "Avro marker without a complete 8-byte fingerprint")
        fp = data[len(AVRO_MARKER) : _HEADER_LEN]
        known = self.store.lookup(fp)
        if known is None:
            raise DecodeError(
                "unknown_schema",
                f"no schema in schemas/avro has fingerprint {fp.hex()} "
                "(a newer producer? run with the newer schemas)",
            )
        buf = io.BytesIO(data[_HEADER_LEN:])
        try:
            record = schemaless_reader(buf, known.writer, self.store.reader(known.type_name))
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise DecodeError(
                "undecodable", f"Avro body does not match {known.type_name}: {exc!r}"[:500]
            ) from None
        if buf.tell() != len(data) - _HEADER_LEN:
            raise DecodeError(
                "undecodable",
                f"{len(data) - _HEADER_LEN - buf.tell()} bytes left after a {known.type_name}",
            )
        if not isinstance(record, dict):
            raise DecodeError("undecodable", "Avro body is not a record")
        return _validate(known.type_name, record)

    def _decode_json(self, data: bytes) -> Envelope[Any]:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise DecodeError(
                "undecodable", f"neither Avro (no C3 01 marker) nor JSON: {exc}"[:500]
            ) from None
        if not isinstance(doc, dict):
            raise DecodeError(
                "schema_violation", f"a message is a JSON object, not {type(doc).__name__}"
            )
        short_form = "type" not in doc and "body" not in doc
        if short_form:
            doc = _expand_short_task(doc)
        type_name = doc.get("type")
        if not isinstance(type_name, str) or type_name not in BODY_TYPES:
            raise DecodeError(
                "schema_violation",
                f"unknown message type {type_name!r}; one of {', '.join(sorted(BODY_TYPES))}",
            )
        return _validate(type_name, doc, short_form=short_form)


def _expand_short_task(doc: dict[str, Any]) -> dict[str, Any]:
    """`{"task_id": "t1", "goal": "..."}` -> a full TaskSubmitted envelope."""
    envelope = {k: v for k, v in doc.items() if k in _ENVELOPE_FIELDS}
    body = {k: v for k, v in doc.items() if k not in _ENVELOPE_FIELDS}
    envelope["type"] = TaskSubmitted.TYPE
    envelope["body"] = body
    task_id = doc.get("task_id")
    if "message_id" not in envelope and isinstance(task_id, str):
        envelope["message_id"] = uuid.uuid5(_SHORT_FORM_NAMESPACE, task_id).hex
    return envelope


def _validate(type_name: str, record: dict[str, Any], short_form: bool = False) -> Envelope[Any]:
    try:
        return envelope_class(type_name).model_validate(record)
    except ValidationError as exc:
        raise DecodeError("schema_violation", _describe(type_name, exc, short_form)) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise DecodeError("schema_violation", f"{type_name}: {exc}"[:500]) from None


def _describe(type_name: str, exc: ValidationError, short_form: bool) -> str:
    """A short, fixable description: `TaskSubmitted: body.goal: Field required; ...`."""
    parts = []
    for err in exc.errors()[:5]:
        loc_parts = list(err["loc"])
        if short_form and loc_parts[:1] == ["body"]:
            loc_parts = loc_parts[1:]  # the client wrote a flat object: name its fields
        loc = ".".join(str(p) for p in loc_parts) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    tail = f"; and {more} more" if more > 0 else ""
    return f"{type_name}: {'; '.join(parts)}{tail}"


__all__ = ["AVRO_MARKER", "CONTENT_TYPE_HEADER", "Codec", "ContentType", "DecodeError"]
