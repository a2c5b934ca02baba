"""The `synod` command line.

Every command that prints data takes `--json` and then prints exactly one JSON
document on stdout; progress and logs go to stderr. Exit status: 0 on success,
1 when the operation failed, 2 on bad usage.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from synod import __version__
from synod.cli import approvals, chaos, check, client, dlq, sim, team
from synod.cli.output import BootstrapOption, JsonOption, emit, fail
from synod.client.cluster import kafka_settings
from synod.dev import jaeger as jaeger_dev
from synod.dev.localrun import LocalRun, parse_replicas, read_state
from synod.dev.localrun import up as run_up
from synod.errors import ConfigError, SynodError
from synod.settings import KafkaSettings
from synod.transport.admin import ensure_topics
from synod.transport.authorship import write_keys
from synod.transport.reader import Since, decode, read_to_end, topic_partitions
from synod.transport.security import KafkaSecurity
from synod.transport.topics import HEARTBEATS, topic_name
from synod.wire import Heartbeat

app = typer.Typer(
    name="synod",
    help="Run teams of LLM agents as a distributed system over Apache Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Kafka topics of the catalogue.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(client.app)  # submit, status, watch
app.add_typer(check.app)  # check
app.add_typer(sim.app)  # sim
app.add_typer(chaos.app)  # chaos
app.add_typer(dlq.app, name="dlq")
app.add_typer(team.app, name="team")
app.add_typer(approvals.app, name="approvals")


@app.command()
def version(as_json: JsonOption = False) -> None:
    """Print Synod's version."""
    if as_json:
        emit({"version": __version__})
    else:
        print(__version__)


@app.command()
def config(as_json: JsonOption = False) -> None:
    """Print the effective settings (from SYNOD_* variables and defaults), secrets masked,
    and the model routing in force (which provider and model serves each role)."""
    # Deferred: only `synod config` needs the LLM layer; every other command
    # starts without loading synod.llm.
    from synod.llm.selection import routing_in_force
    from synod.llm.settings import load_settings

    settings = KafkaSettings()
    try:
        llm = load_settings()
        routing = routing_in_force(llm)
    except SynodError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    doc: dict[str, dict[str, Any]] = {
        "kafka": settings.model_dump(),
        "llm": llm.model_dump(mode="json"),
        "routing": routing,
    }
    if as_json:
        emit(doc)
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
        int | None,
        typer.Option(min=1, help="replicas per partition (default: 3 on 3+ brokers, else 1)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create the catalogue's topics that do not exist yet; safe to run again."""
    settings = kafka_settings(bootstrap)
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
        raise fail(str(exc), as_json) from None
    if as_json:
        emit({"bootstrap": address, "topics": [asdict(r) for r in reports]})
        return
    for r in reports:
        note = f"  ({r.note})" if r.note else ""
        print(f"{r.action:<8} {r.topic}  partitions={r.partitions}{note}")
    created = sum(r.action == "created" for r in reports)
    print(f"{created} created, {len(reports) - created} already existed", file=sys.stderr)


# Roles with one principal each in Kubernetes (their pods share it); reviewers
# get one per ordinal, since a vote counts only under the voter's own key.
_CHART_PRINCIPALS = ("gateway", "planner", "researcher", "coder", "consensus", "supervisor")


@app.command()
def keys(
    out: Annotated[Path, typer.Argument(help="directory for <principal>.key and keyring.json")],
    reviewers: Annotated[
        int, typer.Option(min=1, help="reviewer ordinals (the chart's roles.reviewer.replicas)")
    ] = 3,
    as_json: JsonOption = False,
) -> None:
    """Make the Ed25519 signing keys and keyring the chart's `signing` values take."""
    principals = {p: p for p in _CHART_PRINCIPALS}
    principals |= {f"reviewer-{n}": "reviewer" for n in range(reviewers)}
    if out.exists() and any(out.glob("*.key")):
        raise fail(f"{out} already holds keys: pick an empty directory", as_json)
    keyring = write_keys(out, principals)
    files = ["--set-file", f"signing.keyring={keyring}"]
    for p in principals:
        files += ["--set-file", f"signing.keys.{p}={out / f'{p}.key'}"]
    if as_json:
        emit({"keyring": str(keyring), "principals": principals, "helm_args": files})
        return
    print(f"wrote {len(principals)} keys and {keyring}", file=sys.stderr)
    print(" ".join(["--set", "signing.enabled=true", *files]))


@app.command()
def up(
    bootstrap: BootstrapOption = None,
    backend: Annotated[
        str | None, typer.Option(help="LLM backend: sim or anthropic (default: auto)")
    ] = None,
    replicas: Annotated[
        list[str] | None, typer.Option("--replicas", help="ROLE=N, repeatable (e.g. coder=3)")
    ] = None,
    fault_profile: Annotated[
        str | None, typer.Option(help="sim fault profile: none, flaky, hostile, or a file")
    ] = None,
    gateway_port: Annotated[int, typer.Option(help="the gateway's HTTP port")] = 8080,
    run_dir: Annotated[
        Path | None, typer.Option(help="where logs and the process list go (default .cache/up)")
    ] = None,
    jaeger: Annotated[
        bool,
        typer.Option(help="also run Jaeger (.tools/jaeger, `make jaeger`) and trace into it"),
    ] = False,
    brokers: Annotated[
        int,
        typer.Option(min=1, max=5, help="local Kafka nodes: 1, or 3 (KRaft quorum, RF 3)"),
    ] = 1,
    secure: Annotated[
        bool,
        typer.Option(
            help="secure the local broker: SCRAM user per role, ACLs, TLS, signed messages; "
            "credentials in <run dir>/credentials.json"
        ),
    ] = False,
) -> None:
    """Run a local broker (unless --bootstrap) and every service as a child process."""
    if backend not in (None, "sim", "anthropic"):
        print("error: --backend is sim or anthropic", file=sys.stderr)
        raise typer.Exit(code=2)
    try:
        counts = parse_replicas(replicas or [])
    except SynodError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    run = LocalRun(
        bootstrap=bootstrap,
        backend=backend,
        fault_profile=fault_profile,
        replicas=counts,
        prefix=KafkaSettings().topic_prefix,
        gateway_port=gateway_port,
        brokers=brokers,
        secure=secure,
    )
    if run_dir is not None:
        run.run_dir = run_dir
    traces = _start_jaeger(run.run_dir / "jaeger") if jaeger else None
    try:
        code = asyncio.run(run_up(run))
    finally:
        if traces is not None:
            traces.stop()
    raise typer.Exit(code=code)


def _start_jaeger(run_dir: Path) -> Any:
    """Jaeger on its usual ports; the children trace into it (they inherit OTEL_*)."""
    try:
        traces = jaeger_dev.start(run_dir, jaeger_dev.DEFAULT_PORTS)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    except RuntimeError as exc:
        print(f"error: {exc} (are ports 4317, 4318, 16686 free?)", file=sys.stderr)
        raise typer.Exit(code=1) from None
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = traces.otlp_http
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    print(
        f"traces: {traces.ui}/api/traces?service=synod-planner (Jaeger's query API; its web UI "
        f"at {traces.ui} if the binary embeds it, as Jaeger's releases do)",
        file=sys.stderr,
    )
    return traces


@app.command()
def ps(
    as_json: JsonOption = False,
    run_dir: Annotated[Path | None, typer.Option(help="the run dir `synod up` used")] = None,
) -> None:
    """List the instances `synod up` runs, with their last heartbeat."""
    state = read_state(run_dir)
    if state is None:
        raise fail("no `synod up` is running here", as_json)
    # Logged in (cli.env of `synod up --secure`): through the secured listener;
    # else the loopback door `synod up` itself uses.
    secured = KafkaSecurity().security_protocol != "PLAINTEXT" and state.get("secure_bootstrap")
    bootstrap = state["secure_bootstrap"] if secured else state["bootstrap"]
    try:
        beats = asyncio.run(_last_heartbeats(bootstrap, state["prefix"]))
    except SynodError as exc:
        raise fail(str(exc), as_json) from None
    rows = []
    for child in state["children"]:
        beat = beats.get(child["instance"])
        rows.append(
            {
                **child,
                "state": beat["state"] if beat else "no heartbeat",
                "last_heartbeat_s_ago": beat["age_s"] if beat else None,
                "in_flight": beat["in_flight"] if beat else [],
            }
        )
    if as_json:
        emit({"bootstrap": bootstrap, "instances": rows})
        return
    print(f"{'ROLE':<11}{'INSTANCE':<14}{'PID':>8}  {'STATE':<13}{'HEARTBEAT':>10}  RESTARTS")
    for r in rows:
        age = f"{r['last_heartbeat_s_ago']:.1f}s" if r["last_heartbeat_s_ago"] is not None else "-"
        print(
            f"{r['role']:<11}{r['instance']:<14}{r['pid'] or '-':>8}  {r['state']:<13}"
            f"{age:>10}  {r['restarts']}"
        )


async def _last_heartbeats(bootstrap: str, prefix: str) -> dict[str, dict[str, Any]]:
    """The newest heartbeat of each instance from the last minute of synod.heartbeats."""
    topic = topic_name(HEARTBEATS, prefix)
    since = Since(int((time.time() - 60) * 1000))
    records = await read_to_end(
        bootstrap, await topic_partitions(bootstrap, [topic]), start=since, timeout_s=30.0
    )
    latest = {}
    for got in decode(records).received:
        beat = got.envelope.body
        if isinstance(beat, Heartbeat):
            latest[beat.instance] = {
                "state": beat.state,
                "age_s": round(time.time() - got.record.timestamp_ms / 1000, 1),
                "in_flight": beat.in_flight,
            }
    return latest


def main() -> None:
    # The CLI says in one line what failed and what to set; aiokafka's own
    # connection errors (printed by logging's last-resort handler) only repeat it.
    if os.environ.get("SYNOD_LOG_LEVEL", "").lower() != "debug":
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    app()


if __name__ == "__main__":
    main()
