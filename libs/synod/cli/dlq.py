"""`synod dlq`: list, show and replay dead letters.

    synod dlq list   [--json] [--reason R] [--since T] [--topic SRC] [--bootstrap B]
    synod dlq show   ID [--json] [--bootstrap B]
    synod dlq replay [--id ID ...] [--reason R] [--since T] [--topic SRC] [--all]
                     [--dry-run] [--include-poison] [--json] [--bootstrap B]

The commands read `synod.dlq` (and `synod.dlq.replays`) from the beginning
with a group-less consumer and fold what they read in `synod.core.deadletters`, which
also decides what a replay sends; this module is only the Kafka and terminal
side. A replay republishes the original key, value and headers to the source
topic, then records the replay in `synod.dlq.replays` keyed by the dead-letter
id, so a second replay of the same dead letter sends nothing. Copy first,
record second: a crash in between may leave a copy unrecorded, and replaying
again sends a second copy with the original message id, which consumers'
dedup drops -- better than a record marked replayed that never was.

Registered on the `synod` app by one line in `synod.cli.main`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from synod.cli.output import BootstrapOption, JsonOption, emit, fail
from synod.client.cluster import kafka_settings
from synod.core.deadletters import (
    DeadLetterEntry,
    DeadLetterFilter,
    DeadLetterIndex,
    ReplayLog,
    ReplayPlan,
    message_head,
    parse_since,
    plan_replay,
    replay_record,
    select,
    source_topics,
)
from synod.errors import BrokerError, ConfigError, DecodeError, SynodError
from synod.transport import Publisher
from synod.transport.reader import read_to_end, topic_partitions
from synod.transport.topics import DLQ, DLQ_REPLAYS, topic_name
from synod.wire import Codec

app = typer.Typer(help="Dead letters: list, show and replay them.", no_args_is_help=True)

ReasonOption = Annotated[
    list[str] | None,
    typer.Option("--reason", help="only this reason (repeatable), e.g. handler_error"),
]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="failed at or after: ISO-8601 time or a duration (10m, 2h, 1d)"),
]
TopicOption = Annotated[
    list[str] | None,
    typer.Option("--topic", help="only dead letters from this source topic (repeatable)"),
]
TimeoutOption = Annotated[
    float, typer.Option(min=1.0, help="give up reading the topics after this many seconds")
]

# ---------------------------------------------------------------- reading


@dataclass
class DeadLetters:
    """What the DLQ holds, folded, and what could not be read."""

    topic: str
    index: DeadLetterIndex
    unreadable: int = 0  # records in the DLQ that are not DeadLetter envelopes


async def _read_to_end(
    bootstrap: str, topic: str, timeout_s: float
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of the topic as it is now: (partition, offset, key, value)."""
    partitions = await topic_partitions(bootstrap, [topic])
    records = await read_to_end(bootstrap, partitions, timeout_s=timeout_s, client_id="synod-cli")
    return [(r.partition, r.offset, r.key, r.value) for r in records]


async def read_dead_letters(
    bootstrap: str, prefix: str = "", timeout_s: float = 60.0, codec: Codec | None = None
) -> DeadLetters:
    """The DLQ folded by dead-letter id: what `synod dlq list --json` prints from."""
    codec = codec or Codec()
    topic = topic_name(DLQ, prefix)
    out = DeadLetters(topic, DeadLetterIndex())
    for partition, offset, _, value in await _read_to_end(bootstrap, topic, timeout_s):
        try:
            envelope = codec.decode(value if value is not None else b"")
        except DecodeError:
            out.unreadable += 1
            continue
        if out.index.apply(envelope, partition, offset) is None:
            out.unreadable += 1
    return out


async def read_replays(bootstrap: str, prefix: str = "", timeout_s: float = 60.0) -> ReplayLog:
    """`synod.dlq.replays` folded: which dead letters were replayed."""
    log = ReplayLog()
    topic = topic_name(DLQ_REPLAYS, prefix)
    for _, _, key, value in await _read_to_end(bootstrap, topic, timeout_s):
        if key is None:
            continue
        try:
            record = json.loads(value) if value is not None else None
        except ValueError:
            continue  # not ours; a replay record is always a JSON object
        if record is None or isinstance(record, dict):
            log.apply(key.decode(errors="replace"), record)
    return log


async def _replays_if_any(bootstrap: str, prefix: str, timeout_s: float) -> ReplayLog | None:
    """The replay log, or None when its topic does not exist yet (an older install)."""
    try:
        return await read_replays(bootstrap, prefix, timeout_s)
    except ConfigError:
        return None


# ---------------------------------------------------------------- output


def _usage(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code=2)


def _filter(
    ids: list[str] | None,
    reasons: list[str] | None,
    since: str | None,
    topics: list[str] | None,
    prefix: str,
) -> DeadLetterFilter:
    try:
        since_at = parse_since(since, datetime.now(UTC)) if since is not None else None
    except ValueError as exc:
        raise _usage(str(exc)) from None
    return DeadLetterFilter(
        ids=frozenset(ids or ()),
        reasons=frozenset(reasons or ()),
        since=since_at,
        topics=source_topics(topics or (), prefix),
    )


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def _list_table(entries: list[DeadLetterEntry], replays: ReplayLog | None) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "FAILED AT (UTC)", "SOURCE", "REASON", "CLASS", "TRIES", "MESSAGE"):
        table.add_column(column, overflow="fold" if column == "MESSAGE" else "ellipsis")
    for e in entries:
        replayed = " (replayed)" if replays is not None and e.dead_letter_id in replays else ""
        table.add_row(
            e.dead_letter_id + replayed,
            _when(e.last_failed_at),
            escape(e.source),
            escape(e.letter.reason),
            e.letter.error_class,
            str(e.attempts),
            escape(message_head(e.letter.message)),
        )
    return table


# ---------------------------------------------------------------- synod dlq list


@app.command("list")
def list_command(
    as_json: JsonOption = False,
    reason: ReasonOption = None,
    since: SinceOption = None,
    topic: TopicOption = None,
    bootstrap: BootstrapOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """List dead letters, oldest failure first, one per id however often it was stored."""
    settings = kafka_settings(bootstrap)
    address = bootstrap or settings.bootstrap
    wanted = _filter(None, reason, since, topic, settings.topic_prefix)
    try:
        letters = asyncio.run(read_dead_letters(address, settings.topic_prefix, timeout))
        replays = asyncio.run(_replays_if_any(address, settings.topic_prefix, timeout))
    except SynodError as exc:
        raise fail(str(exc), as_json) from None
    entries = select(letters.index, wanted)
    if letters.unreadable:
        print(
            f"warning: {letters.unreadable} records in {letters.topic} are not dead letters",
            file=sys.stderr,
        )
    if as_json:
        emit(
            {
                "topic": letters.topic,
                "stored": letters.index.stored,
                "unreadable": letters.unreadable,
                "dead_letters": [
                    {**e.summary(), "replayed": replays is not None and e.dead_letter_id in replays}
                    for e in entries
                ],
            }
        )
        return
    if not entries:
        print(f"no dead letters in {letters.topic} match", file=sys.stderr)
        return
    Console(width=200).print(_list_table(entries, replays))
    print(f"{len(entries)} dead letter{'' if len(entries) == 1 else 's'}", file=sys.stderr)


# ---------------------------------------------------------------- synod dlq show


@app.command("show")
def show_command(
    letter_id: Annotated[str, typer.Argument(metavar="ID", help="a dead-letter id (dl-...)")],
    as_json: JsonOption = False,
    bootstrap: BootstrapOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Everything about one dead letter: where it came from, why, its key, value and headers."""
    settings = kafka_settings(bootstrap)
    address = bootstrap or settings.bootstrap
    try:
        letters = asyncio.run(read_dead_letters(address, settings.topic_prefix, timeout))
        replays = asyncio.run(_replays_if_any(address, settings.topic_prefix, timeout))
    except SynodError as exc:
        raise fail(str(exc), as_json) from None
    entry = letters.index.get(letter_id)
    if entry is None:
        raise fail(
            f"no dead letter {letter_id!r} in {letters.topic}; "
            "`synod dlq list` shows the ids there are",
            as_json,
        )
    doc = entry.detail()
    doc["replay"] = replays.get(letter_id) if replays is not None else None
    doc["decoded"], doc["decode_error"] = _decoded(entry)
    if as_json:
        emit(doc)
        return
    _print_detail(doc)


def _decoded(entry: DeadLetterEntry) -> tuple[Any, str | None]:
    """The value as an envelope (JSON) when it decodes, else why not."""
    if entry.truncated:
        return None, f"only the first {len(entry.letter.value)} bytes are kept"
    try:
        return Codec().decode(entry.letter.value).model_dump(mode="json"), None
    except DecodeError as exc:
        return None, f"{exc.reason}: {exc.detail}"


def _print_detail(doc: dict[str, Any]) -> None:
    out = Console(width=200, highlight=False)
    out.print(f"[bold]{doc['id']}[/bold]  {escape(doc['reason'])} ({doc['error_class']})")
    rows = [
        ("source", f"{doc['source_topic']}:{doc['partition']}@{doc['offset']}"),
        ("attempts", str(doc["attempts"])),
        ("first failed", doc["first_failed_at"]),
        ("last failed", doc["last_failed_at"]),
        ("message id", doc["original_message_id"] or "-"),
        ("stored", f"{doc['copies']}x by {', '.join(doc['dead_lettered_by'])}"),
        ("replayed", json.dumps(doc["replay"]) if doc["replay"] else "no"),
        ("key", doc["key_text"] if doc["key_text"] is not None else f"b64:{doc['key_base64']}"),
        ("value size", f"{doc['value_size']} bytes{' (truncated)' if doc['truncated'] else ''}"),
    ]
    for name, value in rows:
        out.print(f"{name + ':':<14}{escape(str(value))}")
    out.print("message:", style="bold")
    out.print(doc["message"], markup=False)
    out.print("headers:", style="bold")
    for h in doc["headers"]:
        shown = h["value_text"] if h["value_text"] is not None else f"b64:{h['value_base64']}"
        out.print(f"  {escape(h['key'])}: {escape(str(shown))}")
    out.print("value (base64):", style="bold")
    out.print(doc["value_base64"], markup=False, soft_wrap=True)
    if doc["decoded"] is not None:
        out.print("decoded:", style="bold")
        out.print(json.dumps(doc["decoded"], indent=2), markup=False)
    else:
        out.print(f"[bold]does not decode:[/bold] {escape(str(doc['decode_error']))}")


# ---------------------------------------------------------------- synod dlq replay


REPLAYED_FROM_HEADER = "synod-replayed-from"


@app.command("replay")
def replay_command(
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="a dead-letter id (repeatable)")
    ] = None,
    reason: ReasonOption = None,
    since: SinceOption = None,
    topic: TopicOption = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="every dead letter (when no other filter is given)")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would be replayed; send nothing")
    ] = False,
    include_poison: Annotated[
        bool,
        typer.Option(
            "--include-poison",
            help="replay records that failed to decode too (they would only dead-letter again)",
        ),
    ] = False,
    as_json: JsonOption = False,
    bootstrap: BootstrapOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Republish dead letters to their source topics, each at most once.

    Exit status: 0 when every selected dead letter was replayed or skipped for a
    stated reason, 1 when an --id is unknown or the broker failed.
    """
    settings = kafka_settings(bootstrap)
    address = bootstrap or settings.bootstrap
    wanted = _filter(ids, reason, since, topic, settings.topic_prefix)
    if wanted.empty and not replay_all:
        raise _usage("say what to replay: --id, --reason, --since, --topic, or --all")
    instance = os.environ.get("SYNOD_INSTANCE") or f"cli-{socket.gethostname()}"
    try:
        letters = asyncio.run(read_dead_letters(address, settings.topic_prefix, timeout))
        replays = asyncio.run(read_replays(address, settings.topic_prefix, timeout))
        plan = plan_replay(letters.index, wanted, replays, include_poison=include_poison)
        if plan.unknown_ids:
            raise fail(
                f"no dead letter {', '.join(plan.unknown_ids)} in {letters.topic}; "
                "`synod dlq list` shows the ids there are (nothing was replayed)",
                as_json,
            )
        sent = (
            [] if dry_run else asyncio.run(_replay(address, settings.topic_prefix, plan, instance))
        )
    except SynodError as exc:
        raise fail(str(exc), as_json) from None
    _report_replay(plan, replays, sent, dry_run, as_json)


async def _replay(
    bootstrap: str, prefix: str, plan: ReplayPlan, instance: str
) -> list[dict[str, Any]]:
    replays_topic = topic_name(DLQ_REPLAYS, prefix)
    publisher = Publisher(bootstrap, client_id="synod-cli")
    try:
        await publisher.start()
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    sent: list[dict[str, Any]] = []
    try:
        for entry in plan.replay:
            d = entry.letter
            headers = [(h.key, h.value if h.value is not None else b"") for h in d.headers]
            headers.append((REPLAYED_FROM_HEADER, entry.dead_letter_id.encode()))
            try:
                meta = await publisher.publish_raw(d.source_topic, d.value, d.key, headers)
                record = replay_record(
                    entry, datetime.now(UTC), meta.partition, meta.offset, instance
                )
                await publisher.publish_raw(
                    replays_topic,
                    json.dumps(record).encode(),
                    entry.dead_letter_id.encode(),
                    [("content-type", b"application/json")],
                )
            except KafkaError as exc:
                raise BrokerError(
                    f"replaying {entry.dead_letter_id} to {d.source_topic} failed after "
                    f"{len(sent)} replays: {exc}; run the same replay again to go on"
                ) from exc
            sent.append(record)
    finally:
        await publisher.stop()
    return sent


def _report_replay(
    plan: ReplayPlan,
    replays: ReplayLog,
    sent: list[dict[str, Any]],
    dry_run: bool,
    as_json: bool,
) -> None:
    skipped_poison = (
        f"{len(plan.poison)} skipped as poison (they failed to decode and would only be "
        "dead-lettered again; --include-poison replays them anyway)"
    )
    skipped_cut = (
        f"{len(plan.truncated)} skipped as truncated (oversized: the DLQ keeps only the "
        "head of the value)"
    )
    if as_json:
        emit(
            {
                "dry_run": dry_run,
                "replayed": sent,
                "would_replay": [e.summary() for e in plan.replay] if dry_run else [],
                "already_replayed": [
                    {"id": e.dead_letter_id, "replay": replays.get(e.dead_letter_id)}
                    for e in plan.already_replayed
                ],
                "skipped_poison": [e.dead_letter_id for e in plan.poison],
                "skipped_truncated": [e.dead_letter_id for e in plan.truncated],
            }
        )
    else:
        for e in plan.replay if dry_run else []:
            print(f"would replay {e.dead_letter_id} to {e.source} ({e.letter.reason})")
        for r in sent:
            print(
                f"replayed {r['dead_letter_id']} to "
                f"{r['source_topic']}:{r['copy_partition']}@{r['copy_offset']}"
            )
        for e in plan.already_replayed:
            done = replays.get(e.dead_letter_id) or {}
            print(
                f"skipped {e.dead_letter_id}: already replayed at "
                f"{done.get('replayed_at', '?')} by {done.get('by', '?')}"
            )
    verb = "would replay" if dry_run else "replayed"
    count = len(plan.replay) if dry_run else len(sent)
    lines = [f"{verb} {count}", f"{len(plan.already_replayed)} skipped as already replayed"]
    if plan.poison:
        lines.append(skipped_poison)
    if plan.truncated:
        lines.append(skipped_cut)
    print("; ".join(lines), file=sys.stderr)
