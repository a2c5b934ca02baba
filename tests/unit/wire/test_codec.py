"""The codec: every message type round-trips in Avro and JSON, and no input,
however broken, raises anything but DecodeError."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from typing import Any

import pytest
from fastavro import schemaless_reader
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.errors import DecodeError, EncodeError
from synod.wire import BODY_TYPES, Codec, Envelope, Sender, TaskSubmitted, Vote
from synod.wire.codec import AVRO_MARKER
from synod.wire.examples import example_envelopes

CODEC = Codec()
EXAMPLES = example_envelopes()


def test_examples_cover_every_message_type() -> None:
    assert {e.type for e in EXAMPLES} == set(BODY_TYPES)


@pytest.mark.parametrize("envelope", EXAMPLES, ids=lambda e: e.type)
@pytest.mark.parametrize("content_type", ["avro", "json"])
def test_round_trip(envelope: Envelope[Any], content_type: Any) -> None:
    data = CODEC.encode(envelope, content_type)
    assert CODEC.content_type_of(data) == content_type
    decoded = CODEC.decode(data)
    assert decoded == envelope
    assert type(decoded.body) is type(envelope.body)


@pytest.mark.parametrize("envelope", EXAMPLES, ids=lambda e: e.type)
def test_avro_is_single_object_encoding_readable_by_plain_avro_tools(
    envelope: Envelope[Any],
) -> None:
    data = CODEC.encode_avro(envelope)
    assert data[:2] == b"\xc3\x01"
    fp = data[2:10]
    assert fp == CODEC.store.current_fingerprint(envelope.type)
    # A generic Avro reader with only the .avsc file decodes the rest.
    record = schemaless_reader(io.BytesIO(data[10:]), CODEC.store.reader(envelope.type), None)
    assert isinstance(record, dict)
    assert record["message_id"] == envelope.message_id


def test_short_form_json_task_takes_defaults_and_a_stable_message_id() -> None:
    raw = b'{"task_id": "t-1", "goal": "Summarise the design"}'
    first, second = CODEC.decode(raw), CODEC.decode(raw)
    assert first.type == "TaskSubmitted"
    assert first.task_id == "t-1"
    assert isinstance(first.body, TaskSubmitted)
    assert first.body.reviewers == 3
    assert first.body.consistency == "strong"
    # Submitting the same task twice is one task: the ids match.
    assert first.message_id == second.message_id


@pytest.mark.parametrize(
    ("raw", "reason", "fragment"),
    [
        (b'{"task_id": "t-1"}', "schema_violation", "goal: Field required"),
        (b'{"goal": "x"}', "schema_violation", "task_id"),
        (b'{"task_id": "t", "goal": "x", "reviewers": 0}', "schema_violation", "reviewers"),
        (b'{"type": "Nope", "body": {}}', "schema_violation", "unknown message type 'Nope'"),
        (b"[1, 2]", "schema_violation", "JSON object"),
        (b'{"task_id": "t-1", "goal": ', "undecodable", "nor JSON"),
        (b"\xc3\x01\x00", "undecodable", "fingerprint"),
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02", "unknown_schema", "0000000000000000"),
    ],
)
def test_bad_input_names_what_is_wrong(raw: bytes, reason: str, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(raw)
    assert info.value.reason == reason
    assert fragment in str(info.value)


def test_truncated_and_padded_avro_is_undecodable() -> None:
    data = CODEC.encode_avro(EXAMPLES[0])
    with pytest.raises(DecodeError) as info:
        CODEC.decode(data[:-3])
    assert info.value.reason == "undecodable"
    with pytest.raises(DecodeError) as info:
        CODEC.decode(data + b"\x00")
    assert info.value.reason == "undecodable"


def test_oversized_messages_are_refused_both_ways() -> None:
    small = Codec(store=CODEC.store, max_bytes=200)
    envelope = EXAMPLES[3]  # StepCompleted with code in it
    with pytest.raises(EncodeError) as enc:
        small.encode(envelope)
    assert enc.value.reason == "oversized"
    with pytest.raises(DecodeError) as dec:
        small.decode(CODEC.encode(envelope))
    assert dec.value.reason == "oversized"


def test_envelope_type_must_match_body() -> None:
    with pytest.raises(ValueError, match="type is 'Vote'"):
        Envelope[TaskSubmitted](type="Vote", task_id="t", body=TaskSubmitted(goal="g"))
    with pytest.raises(ValueError, match="needs a task_id"):
        Envelope.new(TaskSubmitted(goal="g"), sender=Sender(role="client", instance="c"))


def test_vote_choice_must_match_kind() -> None:
    with pytest.raises(ValueError, match="needs a choice"):
        Vote(proposal_id="p", voter="v", kind="choice")
    with pytest.raises(ValueError, match="needs a choice"):
        Vote(proposal_id="p", voter="v", kind="reject", choice="c1")


# ------------------------------------------------------------ properties


def _decode_or_typed_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        CODEC.decode(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    _decode_or_typed_error(data)


_KNOWN_PREFIXES = [AVRO_MARKER + fp.fingerprint for fp in CODEC.store.known()]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(_KNOWN_PREFIXES), st.binary(max_size=500))
def test_known_fingerprint_with_garbage_raises_only_decode_error(
    prefix: bytes, body: bytes
) -> None:
    _decode_or_typed_error(prefix + body)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([CODEC.encode_avro(e) for e in EXAMPLES]), st.data())
def test_bit_flipped_avro_raises_only_decode_error(data: bytes, draw: st.DataObject) -> None:
    i = draw.draw(st.integers(min_value=0, max_value=len(data) - 1))
    bit = draw.draw(st.integers(min_value=0, max_value=7))
    flipped = bytearray(data)
    flipped[i] ^= 1 << bit
    _decode_or_typed_error(bytes(flipped))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["type", "task_id", "goal", "body", "message_id", "created_at", "x"]),
        _json_values,
    )
)
def test_arbitrary_json_objects_raise_only_decode_error(doc: dict[str, Any]) -> None:
    _decode_or_typed_error(json.dumps(doc).encode())


def test_deeply_nested_json_is_a_decode_error_not_a_crash() -> None:
    with pytest.raises(DecodeError):
        CODEC.decode(b"[" * 100_000 + b"]" * 100_000)


def test_an_envelope_class_outlives_a_gc() -> None:
    # pydantic holds `Envelope[Body]` weakly: rebuilt after a GC, each decode that
    # follows pays ~2.5 ms. A fresh interpreter, because this module's examples keep
    # every class alive through their instances.
    probe = (
        "import gc, weakref\n"
        "from synod.wire.messages import envelope_class\n"
        "ref = weakref.ref(envelope_class('Vote'))\n"
        "gc.collect()\n"
        "print(ref() is not None and ref() is envelope_class('Vote'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "True"


def test_codecs_share_one_parse_of_the_schemas() -> None:
    # Building a Codec once parsed every schema (0.5-2 s): a reader that decoded each
    # poll with a fresh one stalled its event loop.
    a, b = Codec(), Codec()
    assert all(a.store.reader(t) is b.store.reader(t) for t in BODY_TYPES)
    assert {s.fingerprint for s in a.store.known()} == {s.fingerprint for s in b.store.known()}
