"""The snapshot frame: what goes in comes out, and damage is named, never trusted."""

from __future__ import annotations

import pytest

from synod.core.snapshot import (
    Snapshot,
    SnapshotError,
    decode_snapshot,
    encode_snapshot,
    pack_records,
    snapshot_key,
    unpack_records,
)


def _snapshot() -> Snapshot:
    return Snapshot("synod.consensus", "synod.votes", 3, 12345, b"state" * 1000)


def test_a_snapshot_round_trips_and_is_compressed() -> None:
    data = encode_snapshot(_snapshot())
    assert decode_snapshot(data) == _snapshot()
    assert len(data) < 1000  # 5000 repetitive bytes of payload


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: b"", "empty"),
        (lambda d: d[:5], "corrupt"),
        (lambda d: b"XXXX" + d[4:], "corrupt"),
        (lambda d: d[:4] + b"\x09" + d[5:], "version"),
        (lambda d: d[:-3], "corrupt"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 0xFF]), "corrupt"),
    ],
)
def test_a_damaged_frame_is_refused_with_its_reason(damage: object, reason: str) -> None:
    data = encode_snapshot(_snapshot())
    with pytest.raises(SnapshotError) as caught:
        decode_snapshot(damage(data))  # type: ignore[operator]
    assert caught.value.reason == reason


def test_the_key_names_owner_topic_and_partition() -> None:
    assert snapshot_key("synod.consensus", "p.synod.votes", 7) == b"synod.consensus|p.synod.votes|7"
    assert snapshot_key("a", "t", 1) != snapshot_key("a", "t", 11)


def test_packed_records_come_back_in_order_and_damage_is_refused() -> None:
    records = [b"", b"one", bytes(range(256)) * 40]
    packed = pack_records(records)
    assert unpack_records(packed) == records
    assert unpack_records(b"head" + packed, 4) == records
    assert unpack_records(pack_records([])) == []
    for damaged in (packed[:-1], packed + b"x", packed[:3]):
        with pytest.raises(ValueError, match="packed record list"):
            unpack_records(damaged)
