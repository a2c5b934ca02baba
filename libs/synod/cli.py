"""The `synod` command line.

Every command that prints data takes `--json` and then prints exactly one JSON
document on stdout; progress and logs go to stderr. Exit status: 0 on success,
1 when the operation failed, 2 on bad usage.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer

from synod import __version__
from synod.errors import SynodError
from synod.settings import KafkaSettings

app = typer.Typer(
    name="synod",
    help="Run teams of LLM agents as a distributed system over Apache Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Kafka topics of the catalogue.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")

JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
BootstrapOption = Annotated[
    str | None,
    typer.Option("--bootstrap", "-b", help="Kafka bootstrap servers (default: SYNOD_BOOTSTRAP)"),
]


def _emit(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


def _fail(message: str, as_json: bool) -> typer.Exit:
    if as_json:
        _emit({"error": {"message": message}})
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code=1)


@app.command()
def version(as_json: JsonOption = False) -> None:
    """Print Synod's version."""
    if as_json:
        _emit({"version": __version__})
    else:
        print(__version__)


@app.command()
def config(as_json: JsonOption = False) -> None:
    """Print the effective settings (from SYNOD_* variables and defaults)."""
    settings = KafkaSettings()
    doc = {"kafka": settings.model_dump()}
    if as_json:
        _emit(doc)
        return
    for section, values in doc.items():
        for key, value in values.items():
            print(f"{section}.{key} = {value}")


@topics_app.command("create")
def topics_create(
    bootstrap: BootstrapOption = None,
    prefix: Annotated[
        str | None, typer.Option(help="topic name prefix (default: SYNOD_TOPIC_PREFIX)")
    ] = None,
    partitions: Annotated[
        int | None, typer.Option(min=1, help="override every topic's partition count")
    ] = None,
    replication_factor: Annotated[
        int, typer.Option(min=1, help="replicas per partition (3 on a production cluster)")
    ] = 1,
    as_json: JsonOption = False,
) -> None:
    """Create the catalogue's topics that do not exist yet; safe to run again."""
    from synod.transport.admin import ensure_topics

    settings = KafkaSettings()
    address = bootstrap or settings.bootstrap
    topic_prefix = settings.topic_prefix if prefix is None else prefix
    try:
        reports = asyncio.run(
            ensure_topics(
                address,
                prefix=topic_prefix,
                partitions=partitions,
                replication_factor=replication_factor,
            )
        )
    except SynodError as exc:
        raise _fail(str(exc), as_json) from None
    if as_json:
        _emit({"bootstrap": address, "topics": [asdict(r) for r in reports]})
        return
    for r in reports:
        note = f"  ({r.note})" if r.note else ""
        print(f"{r.action:<8} {r.topic}  partitions={r.partitions}{note}")
    created = sum(r.action == "created" for r in reports)
    print(f"{created} created, {len(reports) - created} already existed", file=sys.stderr)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
