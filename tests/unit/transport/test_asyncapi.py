"""The AsyncAPI document names every topic the catalogue creates and every message on it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from synod.transport import asyncapi, channels
from synod.transport.topics import CATALOGUE
from synod.wire.avro import avro_schema
from synod.wire.messages import BODY_TYPES


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return asyncapi.document()


def test_the_checked_in_document_is_the_generated_one() -> None:
    assert asyncapi.path().read_text() == asyncapi.text(), "run `make schemas`"


def test_every_catalogue_topic_is_a_channel_with_its_kafka_binding(doc: dict[str, Any]) -> None:
    assert set(doc["channels"]) == {spec.name for spec in CATALOGUE}
    for spec in CATALOGUE:
        channel = doc["channels"][spec.name]
        assert channel["address"] == spec.name
        kafka = channel["bindings"]["kafka"]
        assert kafka["topic"] == spec.name
        assert kafka["partitions"] == spec.partitions
        config = kafka["topicConfiguration"]
        assert config["cleanup.policy"] == spec.cleanup_policy.split(",")
        assert config.get("retention.ms") == spec.retention_ms


def test_every_message_type_on_a_topic_is_on_its_channel(doc: dict[str, Any]) -> None:
    for spec in CATALOGUE:
        entry = channels.CHANNELS[spec.name]
        named = set(doc["channels"][spec.name]["messages"])
        for type_name in entry.messages:
            assert type_name in named or f"{type_name}Json" in named, (spec.name, type_name)
        for mid, ref in doc["channels"][spec.name]["messages"].items():
            assert ref == {"$ref": f"#/components/messages/{mid}"}
            assert mid in doc["components"]["messages"]


def test_every_wire_type_travels_somewhere_with_its_avro_schema(doc: dict[str, Any]) -> None:
    carried = {m for c in channels.CHANNELS.values() for m in c.messages}
    assert carried == set(BODY_TYPES)
    messages = doc["components"]["messages"]
    internal = {m for c in channels.CHANNELS.values() if c.encoding == "avro" for m in c.messages}
    for type_name in internal:
        assert messages[type_name]["payload"]["schema"] == avro_schema(type_name)


def test_edge_topics_carry_json_and_the_results_only_json(doc: dict[str, Any]) -> None:
    assert {"TaskSubmitted", "TaskSubmittedJson"} <= set(doc["channels"]["synod.tasks"]["messages"])
    assert {"TaskCompletedJson", "TaskFailedJson"} <= set(
        doc["channels"]["synod.results"]["messages"]
    )
    assert all(m.endswith("Json") for m in doc["channels"]["synod.results"]["messages"])
    ref = doc["components"]["messages"]["TaskSubmittedJson"]["payload"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    assert doc["components"]["schemas"][name]["properties"]["body"]


def test_a_topic_missing_from_the_channels_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    trimmed = dict(channels.CHANNELS)
    del trimmed["synod.heartbeats"]
    monkeypatch.setattr(channels, "CHANNELS", trimmed)
    assert channels.missing_channels() == ["synod.heartbeats"]
    monkeypatch.setattr(asyncapi, "missing_channels", channels.missing_channels)
    with pytest.raises(SystemExit, match=r"synod\.heartbeats"):
        asyncapi.document()


def test_the_document_is_json(doc: dict[str, Any]) -> None:
    assert json.loads(asyncapi.text()) == doc
