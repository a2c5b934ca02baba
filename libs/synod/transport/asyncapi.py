"""The AsyncAPI 3 document of every topic: `python -m synod.transport.asyncapi [--check]`.

Generated from the topic catalogue (`synod.transport.topics`), what each topic
carries (`synod.transport.channels`) and the wire models (`synod.wire`): each
internal message's payload is the Avro schema the codec writes, each JSON one
the JSON Schema of its pydantic envelope. Written to schemas/asyncapi.json by
`make schemas`; `make lint` checks it is current and parses it with the
AsyncAPI project's parser (hack/asyncapi-validate.mjs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

import synod
from synod.transport.channels import CHANNELS, Channel, missing_channels
from synod.transport.topics import CATALOGUE, TopicSpec
from synod.wire.avro import avro_schema, schemas_dir
from synod.wire.messages import BODY_TYPES, envelope_class

ASYNCAPI_VERSION = "3.1.0"
KAFKA_BINDING = "0.5.0"
AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
AVRO_CONTENT = "application/vnd.apache.avro"
JSON_CONTENT = "application/json"
# Only these topic configurations have a place in the Kafka channel binding.
_BINDING_CONFIGS = ("retention.ms", "delete.retention.ms", "max.message.bytes")

_DESCRIPTION = """\
Every Kafka topic Synod creates (`synod topics create`), what each carries, \
who writes and who reads it. Names are as in the catalogue; an install with \
`SYNOD_TOPIC_PREFIX` puts the prefix in front of each. Internal topics carry \
Avro in the single-object encoding (marker C3 01, the 8-byte CRC-64-AVRO \
fingerprint of the writer's schema, then the binary body); every schema ever \
written is in schemas/avro/history/<Type>/<fingerprint>.avsc. The edge topics \
synod.tasks and synod.results carry JSON with the header content-type: \
application/json (synod.tasks also accepts Avro)."""


def _avro_message(type_name: str) -> dict[str, Any]:
    return {
        "name": type_name,
        "title": f"{type_name} (Avro)",
        "summary": _summary(type_name),
        "contentType": AVRO_CONTENT,
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": avro_schema(type_name)},
    }


def _json_message(type_name: str) -> dict[str, Any]:
    return {
        "name": f"{type_name}Json",
        "title": f"{type_name} (JSON)",
        "summary": _summary(type_name),
        "contentType": JSON_CONTENT,
        "headers": {
            "type": "object",
            "properties": {"content-type": {"type": "string", "const": JSON_CONTENT}},
        },
        "payload": {"$ref": _json_refs([type_name])[0][type_name]},
    }


def _summary(type_name: str) -> str:
    doc = (BODY_TYPES[type_name].__doc__ or type_name).strip()
    return doc.splitlines()[0]


_SNAPSHOT_MESSAGE = {
    "name": "SnapshotFrame",
    "title": "A state snapshot",
    "summary": "A fold's state up to an offset, in the frame of synod.core.snapshot",
    "contentType": "application/octet-stream",
    "payload": {"type": "string", "format": "binary"},
}
_REPLAY_MESSAGE = {
    "name": "DeadLetterReplay",
    "title": "A replayed dead letter",
    "summary": "Where `synod dlq replay` put a dead letter back, so it is replayed once",
    "contentType": JSON_CONTENT,
    "payload": {
        "type": "object",
        "required": ["dead_letter_id", "replayed_at", "source_topic", "by"],
        "properties": {
            "dead_letter_id": {"type": "string"},
            "replayed_at": {"type": "string", "format": "date-time"},
            "source_topic": {"type": "string"},
            "partition": {"type": "integer"},
            "offset": {"type": "integer"},
            "copy_partition": {"type": "integer"},
            "copy_offset": {"type": "integer"},
            "original_message_id": {"type": ["string", "null"]},
            "by": {"type": "string"},
        },
    },
}


def message_ids(channel: Channel) -> list[str]:
    """The component message ids a channel carries, in the channel's order."""
    if channel.encoding == "snapshot":
        return ["SnapshotFrame"]
    if channel.encoding == "replay-json":
        return ["DeadLetterReplay"]
    ids: list[str] = []
    for type_name in channel.messages:
        if channel.encoding in ("avro", "avro-or-json"):
            ids.append(type_name)
        if channel.encoding in ("json", "avro-or-json"):
            ids.append(f"{type_name}Json")
    return ids


def _topic_configuration(spec: TopicSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"cleanup.policy": spec.cleanup_policy.split(",")}
    for name, value in spec.config().items():
        if name in _BINDING_CONFIGS:
            config[name] = int(value)
    return config


def _channel(spec: TopicSpec, channel: Channel) -> dict[str, Any]:
    description = spec.purpose
    if channel.note:
        description += f". {channel.note}"
    return {
        "address": spec.name,
        "title": spec.name,
        "description": description,
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in message_ids(channel)},
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "partitions": spec.partitions,
                "topicConfiguration": _topic_configuration(spec),
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "x-synod-key": channel.key,
        "x-synod-publishers": list(channel.publishers),
        "x-synod-consumers": list(channel.consumers),
    }


def _operation(action: str, spec: TopicSpec, channel: Channel, roles: tuple[str, ...]) -> Any:
    verb = "publish to" if action == "send" else "consume"
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{spec.name}"},
        "summary": f"{', '.join(roles)} {verb} {spec.name}",
        "messages": [
            {"$ref": f"#/channels/{spec.name}/messages/{m}"} for m in message_ids(channel)
        ],
        "x-synod-roles": list(roles),
    }


def _json_refs(type_names: list[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """Type -> the $ref of its envelope's JSON Schema, and the schemas referred to."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (envelope_class(t), "validation") for t in type_names
    ]
    refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    by_type = {t: refs[(envelope_class(t), "validation")]["$ref"] for t in type_names}
    schemas: dict[str, Any] = defs.get("$defs", {})
    return by_type, dict(sorted(schemas.items()))


def document() -> dict[str, Any]:
    """The AsyncAPI document, as a JSON-ready dict."""
    missing = missing_channels()
    if missing:
        raise SystemExit(
            f"topics without an entry in synod.transport.channels.CHANNELS: {', '.join(missing)}"
        )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    json_types: list[str] = []
    for spec in CATALOGUE:
        channel = CHANNELS[spec.name]
        channels[spec.name] = _channel(spec, channel)
        for mid in message_ids(channel):
            if mid == "SnapshotFrame":
                messages[mid] = _SNAPSHOT_MESSAGE
            elif mid == "DeadLetterReplay":
                messages[mid] = _REPLAY_MESSAGE
            elif mid.endswith("Json"):
                messages[mid] = _json_message(mid.removesuffix("Json"))
                json_types.append(mid.removesuffix("Json"))
            else:
                messages[mid] = _avro_message(mid)
        if not message_ids(channel):
            continue
        if channel.publishers:
            operations[f"{spec.name}.send"] = _operation("send", spec, channel, channel.publishers)
        if channel.consumers:
            operations[f"{spec.name}.receive"] = _operation(
                "receive", spec, channel, channel.consumers
            )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Synod topics",
            "version": synod.__version__,
            "description": _DESCRIPTION,
            "license": {"name": "see the repository"},
        },
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "`synod up` (any broker: set SYNOD_BOOTSTRAP)",
            }
        },
        "defaultContentType": AVRO_CONTENT,
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": dict(sorted(messages.items())),
            "schemas": _json_refs(sorted(set(json_types)))[1],
        },
    }


def text() -> str:
    return json.dumps(document(), indent=2) + "\n"


def path(root: Path | None = None) -> Path:
    return (root or schemas_dir()) / "asyncapi.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synod.transport.asyncapi")
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args(argv)
    target, want = path(args.root), text()
    current = target.read_text() if target.exists() else None
    if args.check:
        if current != want:
            print("stale: schemas/asyncapi.json (run `make schemas` and commit)", file=sys.stderr)
            return 1
        return 0
    if current != want:
        target.write_text(want)
        print("wrote schemas/asyncapi.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
