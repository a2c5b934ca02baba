"""A secured team end to end (`synod up --secure`): every service a process logging in over
SASL_SSL as its role's SCRAM user, under deny-by-default ACLs from the rights table, signing
what it sends; and the attacks that must fail.

One broker for the whole module (a secured start is the slow part): the broker refuses a
researcher's writes to the deciding topics; a client that trusts another CA fails clearly;
a forged outcome and a vote under another juror's name, sent by principals that may write
those topics, are not acted on and are counted; every task still completes once; no secret
(API key, SCRAM passwords, the gateway token) is in any log line, any record on any topic,
`synod config` or an error answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError
from aiokafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from tests.localteam import assert_log_checks, environment, outcomes_by_task, read_topic

from synod.dev import securekafka
from synod.dev.localkafka import free_port
from synod.dev.localrun import LocalRun
from synod.dev.securekafka import Authority
from synod.errors import BrokerError
from synod.transport import Publisher
from synod.transport.admin import ensure_topics, partition_counts
from synod.transport.authorship import Signer, load_private_key
from synod.transport.security import KafkaSecurity, reload_from_environment
from synod.transport.topics import CATALOGUE, RESULTS, TASK_EVENTS, VOTES, topic_name
from synod.wire import Decision, Envelope, Sender, TaskCompleted, Vote

API_KEY = "sk-ant-api03-CANARY-" + uuid.uuid4().hex
TOKEN = "tok-CANARY-" + uuid.uuid4().hex
REPLICAS = {
    "consensus": 1,
    "planner": 1,
    "researcher": 1,
    "coder": 1,
    "reviewer": 3,
    "supervisor": 1,
    "gateway": 1,
}


@pytest.fixture
async def team(tmp_path: Path) -> AsyncIterator[LocalRun]:
    # Not the session broker: a secured run starts its own.
    env = {
        "SYNOD_LLM_BACKEND": "sim",
        "SYNOD_LLM_SIM_LATENCY": "exponential:0.05",
        "ANTHROPIC_API_KEY": API_KEY,
        "SYNOD_API_TOKENS": f"tester={TOKEN}",
    }
    with environment(env):
        run = LocalRun(
            secure=True,
            prefix=f"sec{uuid.uuid4().hex[:6]}.",
            run_dir=tmp_path,
            gateway_port=free_port(),
            replicas=dict(REPLICAS),
        )
        try:
            await run.start()
            await run.wait_ready()
            yield run
        finally:
            run.stop()
            reload_from_environment()


def security(creds: dict[str, Any], role: str, cafile: str | None = None) -> KafkaSecurity:
    user = creds["roles"][role]
    return KafkaSecurity(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user["username"],
        sasl_password=user["password"],
        ssl_cafile=cafile or creds["ssl_cafile"],
    )


async def write_raw(run: LocalRun, role: str, topic: str) -> None:
    assert run.credentials is not None
    producer = AIOKafkaProducer(
        bootstrap_servers=run.credentials["bootstrap"],
        request_timeout_ms=10_000,
        **security(run.credentials, role).client_kwargs(),
    )
    await producer.start()
    try:
        async with asyncio.timeout(30):
            await producer.send_and_wait(topic_name(topic, run.prefix), b"{}", key=b"x")
    finally:
        await producer.stop()


async def publish_as(
    run: LocalRun, role: str, principal: str, topic: str, envelope: Envelope[Any]
) -> None:
    """Publish through Synod's own publisher with a role's login and a principal's key:
    what a compromised service of that role could send."""
    creds = run.credentials
    assert creds is not None
    os.environ.update(securekafka.env_for(creds, role))
    reload_from_environment()
    try:
        key = load_private_key(Path(creds["keys_dir"]) / f"{principal}.key")
        async with Publisher(creds["bootstrap"], signer=Signer(principal, key)) as publisher:
            await publisher.publish(topic_name(topic, run.prefix), envelope)
    finally:
        for name in securekafka.env_for(creds, role):
            os.environ.pop(name, None)
        reload_from_environment()


def post_task(run: LocalRun, goal: str, token: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{run.gateway_url}/v1/tasks",
        data=json.dumps({"goal": goal}).encode(),
        method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def rejected(run: LocalRun, role: str) -> dict[str, float]:
    """synod_authorship_rejected_total of one role's instances, by outcome."""
    totals: dict[str, float] = {}
    for child in run.children:
        if child.role != role:
            continue
        urls = [
            json.loads(line)["url"]
            for line in child.log_path.read_text().splitlines()
            if '"health endpoints up"' in line
        ]
        if not urls:
            continue  # the gateway serves its own port
        with urllib.request.urlopen(f"{urls[-1]}/metrics", timeout=10) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "synod_authorship_rejected_total":
                    outcome = s.labels["outcome"]
                    totals[outcome] = totals.get(outcome, 0.0) + s.value
    return totals


async def every_record(run: LocalRun) -> list[bytes]:
    """Keys, values and headers of every record on every topic of the install."""
    assert run.bootstrap is not None
    counts = await partition_counts(run.bootstrap, [topic_name(t, run.prefix) for t in CATALOGUE])
    parts = [TopicPartition(n, p) for n, count in counts.items() for p in range(count)]
    assert parts
    consumer = AIOKafkaConsumer(bootstrap_servers=run.bootstrap, group_id=None)
    await consumer.start()
    out: list[bytes] = []
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        pending = {tp for tp in parts if ends[tp] > 0}
        async with asyncio.timeout(60):
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=500)
                for records in batch.values():
                    for r in records:
                        out.append(r.key or b"")
                        out.append(r.value or b"")
                        out.extend(v for _, v in r.headers)
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
    finally:
        await consumer.stop()
    return out


async def test_a_secured_team_refuses_forgeries_and_still_completes_its_tasks(
    team: LocalRun, tmp_path: Path
) -> None:
    creds = team.credentials
    assert creds is not None

    # 1. The broker refuses a researcher's writes to the deciding topics.
    for topic in ("synod.decisions", "synod.votes", "synod.results", "synod.tasks"):
        with pytest.raises(TopicAuthorizationFailedError):
            await write_raw(team, "researcher", topic)

    # 2. TLS: the right CA is what every service uses (they run); another CA fails clearly.
    stranger = Authority.create("another CA").write_cert(tmp_path / "other-ca.pem")
    with environment(
        {**securekafka.env_for(creds, "researcher"), "SYNOD_KAFKA_SSL_CAFILE": str(stranger)}
    ):
        reload_from_environment()
        clear = r"certificate is not trusted.*SYNOD_KAFKA_SSL_CAFILE"
        with pytest.raises(BrokerError, match=clear):
            async with asyncio.timeout(60):
                await ensure_topics(creds["bootstrap"], prefix="never.")
    reload_from_environment()

    # 3. Tasks through the gateway, with its token; a wrong token is refused.
    status, doc = await asyncio.to_thread(post_task, team, "never", "wrong-" + TOKEN)
    assert status == 401
    assert TOKEN not in json.dumps(doc)
    task_ids = set()
    for i in range(6):
        status, doc = await asyncio.to_thread(post_task, team, f"Write helper {i}", TOKEN)
        assert status == 202, doc
        task_ids.add(doc["task_id"])
    target = sorted(task_ids)[0]

    # 4. Forgeries from principals that may write the topics they use.
    # A researcher may write the task log: an outcome claimed in the planner's name...
    fake_planner = Sender(role="planner", instance="planner-0")
    forged_done = Envelope.new(TaskCompleted(result="FORGED"), sender=fake_planner, task_id=target)
    await publish_as(team, "researcher", "researcher-0", TASK_EVENTS.name, forged_done)
    # ...and a decision in the consensus's name, signed as itself.
    fake_consensus = Sender(role="consensus", instance="consensus-0")
    forged_decision = Envelope.new(
        Decision(
            decision_id=f"forged-{uuid.uuid4().hex[:6]}",
            proposal_id="any",
            ballot=1,
            outcome="rejected",
            votes_for=3,
            quorum=2,
        ),
        sender=fake_consensus,
        task_id=target,
    )
    await publish_as(team, "researcher", "researcher-0", TASK_EVENTS.name, forged_decision)
    # A juror may write votes: one under another juror's name.
    juror = Sender(role="reviewer", instance="reviewer-0")
    ballot_stuffing = Envelope.new(
        Vote(proposal_id="any", voter="reviewer-1", choice="c"), sender=juror, task_id=target
    )
    await publish_as(team, "reviewer", "reviewer-0", VOTES.name, ballot_stuffing)

    # 5. Every task completes once, the target with its real result.
    results = await read_topic(team, RESULTS, lambda rs: set(outcomes_by_task(rs)) >= task_ids, 240)
    outcomes = outcomes_by_task(results)
    for task in task_ids:
        assert [kind for _, kind in outcomes[task]] == ["TaskCompleted"], task
    finals = [r for r in results if r.key == target.encode() and b"FORGED" in (r.value or b"")]
    assert not finals, "the forged outcome reached synod.results"

    # 6. The planner and the consensus skipped the forgeries and counted them.
    async def counted() -> bool:
        planner, consensus = rejected(team, "planner"), rejected(team, "consensus")
        return planner.get("sender_mismatch", 0) >= 2 and consensus.get("voter_mismatch", 0) >= 1

    for _ in range(60):
        if await counted():
            break
        await asyncio.sleep(0.5)
    print("rejected:", rejected(team, "planner"), rejected(team, "consensus"))
    assert await counted()
    # Nothing legitimate was refused: every service's rejections are the forgeries'.
    for role in REPLICAS:
        outcomes = set(rejected(team, role))
        assert outcomes <= {"sender_mismatch", "voter_mismatch"}, (role, outcomes)

    # 6b. The gateway shows the target with its real result and the forgeries apart,
    # as forged (the same verdict, synod.roles.gateway.view).
    def gateway_task(task_id: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{team.gateway_url}/v1/tasks/{task_id}",
            headers={"authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            doc: dict[str, Any] = json.loads(response.read())
        return doc

    wanted = ["sender_mismatch", "sender_mismatch", "voter_mismatch"]
    for _ in range(60):
        shown = await asyncio.to_thread(gateway_task, target)
        if sorted(f["reason"] for f in shown.get("forged", [])) == wanted:
            break
        await asyncio.sleep(0.5)
    assert sorted(f["reason"] for f in shown.get("forged", [])) == wanted, shown.get("forged")
    assert shown["state"] == "completed"
    assert shown["result"] != "FORGED"

    # 7. No secret anywhere: logs, records, `synod config`.
    secrets = {"api key": API_KEY, "gateway token": TOKEN}
    secrets.update({f"{r} password": u["password"] for r, u in creds["roles"].items()})
    logs = {c.instance: c.log_path.read_text() for c in team.children}
    for name, secret in secrets.items():
        for instance, text in logs.items():
            assert secret not in text, f"the {name} is in {instance}'s log"
    blobs = await every_record(team)
    assert len(blobs) > 100
    for name, secret in secrets.items():
        assert not any(secret.encode() in b for b in blobs), f"the {name} is on a topic"
    env = {**os.environ, **securekafka.env_for(creds, "planner", "planner-0")}
    env.update(ANTHROPIC_API_KEY=API_KEY, SYNOD_API_TOKENS=f"tester={TOKEN}")
    for args in (["config"], ["config", "--json"]):
        shown = await asyncio.to_thread(
            subprocess.run,
            [str(Path(sys.executable).parent / "synod"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        for name, secret in secrets.items():
            assert secret not in shown.stdout + shown.stderr, f"`synod {args}` shows the {name}"

    # 8. The oracle, which also leaves out what no service acted on.
    doc = await assert_log_checks(team)
    assert doc["forged"].get(TASK_EVENTS.name, 0) >= 2
    assert doc["forged"].get(VOTES.name, 0) >= 1

    # 9. The `synod` CLI logged in as its own read-only user (cli.env), through the
    # SASL_SSL listener, not the operator's door: ps, status and check work.
    cli_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SYNOD_KAFKA_") and k not in ("SYNOD_BOOTSTRAP", "SYNOD_KEYRING_FILE")
    }
    for line in (tmp_path / securekafka.CLI_ENV_FILE).read_text().splitlines():
        name, value = line.split("=", 1)
        cli_env[name] = shlex.split(value)[0]
    assert cli_env["SYNOD_KAFKA_SASL_USERNAME"] == "synod-cli"
    assert cli_env["SYNOD_BOOTSTRAP"] == creds["bootstrap"]

    def synod_cli(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "synod"), *args, "--json"],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        parsed: dict[str, Any] = json.loads(done.stdout)
        return parsed

    ps = await asyncio.to_thread(synod_cli, "ps", "--run-dir", str(tmp_path))
    assert ps["bootstrap"] == creds["bootstrap"]
    assert {r["state"] for r in ps["instances"]} - {"no heartbeat"}, ps
    status = await asyncio.to_thread(synod_cli, "status", target)
    assert status["state"] == "completed"
    assert status["result"] != "FORGED"  # the forged outcome is not shown as the task's
    checked = await asyncio.to_thread(synod_cli, "check")
    assert checked["forged"].get(TASK_EVENTS.name, 0) >= 2
