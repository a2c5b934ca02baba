"""A state snapshot's bytes: what a service's state was after folding a partition up to
an offset, framed so that a damaged or foreign record is recognised, never trusted.

A service that rebuilds its state by folding a partition (the consensus service,
the gateway's view, the planner) writes a snapshot now and then; a successor
restores it and folds only the tail from `offset` on, so recovery is bounded by
the work in flight, not by the partition's history. Pure: bytes in, bytes out.

Frame: b"SYNS" | version (1 byte) | header length (4 bytes, big-endian) | header
(JSON: owner, source topic, partition, offset, payload crc32) | zlib(payload).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass

from synod.errors import SynodError

MAGIC = b"SYNS"
VERSION = 1
_HEAD = struct.Struct(">4sBI")


class SnapshotError(SynodError):
    """A snapshot that cannot be used; `reason` is a short word for metrics."""

    error_class = "permanent"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Snapshot:
    owner: str  # who folds (e.g. the consensus group): its state, its format
    topic: str  # the folded topic
    partition: int
    offset: int  # the next offset to fold: the state covers [0, offset)
    payload: bytes  # the owner's own encoding of its state


def snapshot_key(owner: str, topic: str, partition: int) -> bytes:
    """The compaction key: one live snapshot per owner and source partition."""
    return f"{owner}|{topic}|{partition}".encode()


def encode_snapshot(snapshot: Snapshot) -> bytes:
    header = json.dumps(
        {
            "owner": snapshot.owner,
            "topic": snapshot.topic,
            "partition": snapshot.partition,
            "offset": snapshot.offset,
            "crc32": zlib.crc32(snapshot.payload),
        },
        separators=(",", ":"),
    ).encode()
    body = zlib.compress(snapshot.payload, 6)
    return _HEAD.pack(MAGIC, VERSION, len(header)) + header + body


def decode_snapshot(data: bytes | None) -> Snapshot:
    """The snapshot in `data`; SnapshotError (with a reason) if it is not a sound one."""
    if not data:
        raise SnapshotError("empty", "the snapshot record has no value")
    if len(data) < _HEAD.size:
        raise SnapshotError("corrupt", "the snapshot record is shorter than its frame")
    magic, version, header_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotError("corrupt", "not a snapshot frame (bad magic)")
    if version != VERSION:
        raise SnapshotError("version", f"snapshot frame version {version}; this reads {VERSION}")
    start = _HEAD.size
    try:
        header = json.loads(data[start : start + header_len])
        payload = zlib.decompress(data[start + header_len :])
        snapshot = Snapshot(
            owner=str(header["owner"]),
            topic=str(header["topic"]),
            partition=int(header["partition"]),
            offset=int(header["offset"]),
            payload=payload,
        )
        crc = int(header["crc32"])
    except (ValueError, KeyError, TypeError, zlib.error) as exc:
        raise SnapshotError("corrupt", f"snapshot frame unreadable: {exc}") from exc
    if zlib.crc32(payload) != crc:
        raise SnapshotError("corrupt", "snapshot payload fails its checksum")
    if snapshot.offset < 0:
        raise SnapshotError("corrupt", f"snapshot offset {snapshot.offset} is negative")
    return snapshot


_COUNT = struct.Struct("<I")


def pack_records(records: list[bytes]) -> bytes:
    """Records as one payload: their count, their lengths, then their bytes."""
    return b"".join(
        [_COUNT.pack(len(records)), struct.pack(f"<{len(records)}I", *map(len, records)), *records]
    )


def unpack_records(data: bytes, at: int = 0) -> list[bytes]:
    """The records `pack_records` wrote at `at`; ValueError if `data` is not that."""
    try:
        (count,) = _COUNT.unpack_from(data, at)
        lengths = struct.unpack_from(f"<{count}I", data, at + _COUNT.size)
    except struct.error as exc:
        raise ValueError(f"not a packed record list: {exc}") from exc
    at += _COUNT.size + 4 * count
    records = []
    for length in lengths:
        if at + length > len(data):
            raise ValueError("packed record list truncated")
        records.append(data[at : at + length])
        at += length
    if at != len(data):
        raise ValueError("packed record list has trailing bytes")
    return records
