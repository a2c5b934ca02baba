"""`synod check`: read the whole log and check the invariants a user is promised.

Exit status 0 when the log keeps every promise, 1 on a violation (each one
named with its task, message and record), 2 on bad usage. The oracle is
synod.core.check; what it checks is listed there and in docs/ordering.md.
"""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from synod.cli.output import BootstrapOption, JsonOption, emit, fail
from synod.client.cluster import kafka_settings
from synod.core.check import check as check_log
from synod.errors import SynodError
from synod.transport.authorship import AuthorshipSettings, Keyring
from synod.transport.logread import read_log

app = typer.Typer()

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (naive: UTC) or a duration back from now: 90s, 30m, 2h, 7d."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        return now - timedelta(seconds=float(relative[1]) * _UNITS[relative[2]])
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give an ISO 8601 time (2026-12-01T10:00:00Z) "
            "or a duration back from now (90s, 30m, 2h, 7d)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


async def run_check(
    bootstrap: str,
    prefix: str,
    task_id: str | None = None,
    since: datetime | None = None,
    keyring_file: str | None = None,
) -> dict[str, Any]:
    """Read and check; the report as one JSON-ready dict (what --json prints).

    With a keyring (`keyring_file`, else SYNOD_KEYRING_FILE), records no service
    would act on (synod.transport.authorship) are counted as forged and left out.
    """
    path = keyring_file if keyring_file is not None else AuthorshipSettings().keyring_file
    keyring = Keyring.load(Path(path)) if path else None
    read = await read_log(bootstrap, prefix, keyring=keyring)
    started = datetime.now(UTC)
    report = check_log(read.records, task_id=task_id, since=since)
    doc = report.to_json()
    doc["undecodable"] = dict(read.undecodable)
    doc["forged"] = dict(read.forged)
    doc["read_s"] = round(read.seconds, 3)
    doc["check_s"] = round((datetime.now(UTC) - started).total_seconds(), 3)
    doc["text"] = report.text()
    return doc


@app.command("check")
def check(
    task: Annotated[str | None, typer.Option("--task", help="check this task only")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="only tasks with a record since: ISO time or 90s/30m/2h/7d back"),
    ] = None,
    bootstrap: BootstrapOption = None,
    prefix: Annotated[
        str | None, typer.Option(help="topic name prefix (default: SYNOD_TOPIC_PREFIX)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the whole log: tasks finish once, decisions have their quorum, causes come
    first, no completed write is lost. Exit 1 on a violation."""
    settings = kafka_settings(bootstrap)
    try:
        since_at = parse_since(since, datetime.now(UTC)) if since is not None else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    if task is not None and not task.strip():
        print("error: --task needs a task id", file=sys.stderr)
        raise typer.Exit(code=2)
    address = bootstrap or settings.bootstrap
    topic_prefix = settings.topic_prefix if prefix is None else prefix
    try:
        doc = asyncio.run(run_check(address, topic_prefix, task, since_at))
    except SynodError as exc:
        raise fail(str(exc), as_json) from None
    text = doc.pop("text")
    if as_json:
        emit(doc)
    else:
        print(text)
        print(f"read {doc['records']} records in {doc['read_s']} s, checked in {doc['check_s']} s")
    if not doc["ok"]:
        raise typer.Exit(code=1)
