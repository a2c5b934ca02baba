"""`synod sim`: one JSON document, the hash, exit 1 with a replay command, 2 on bad usage."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from synod.cli.main import app

runner = CliRunner()


def test_a_run_prints_one_json_document_with_its_hash_and_replays_identically() -> None:
    args = ["sim", "--seed", "5", "--tasks", "2", "--faults", "crash,dup,delay", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["ok"] is True
    assert doc["check"]["ok"] is True
    assert len(doc["hash"]) == 64
    assert json.loads(runner.invoke(app, args).stdout)["hash"] == doc["hash"]


def test_a_failing_seed_exits_1_and_prints_the_command_that_replays_it() -> None:
    result = runner.invoke(
        app, ["sim", "--seed", "0", "--tasks", "2", "--bug", "quorum_minus_one", "--shrink"]
    )
    assert result.exit_code == 1
    assert "decision_without_quorum" in result.stdout
    replay = next(line for line in result.stdout.splitlines() if line.startswith("replay: "))
    command = replay.removeprefix("replay: synod ").split()
    assert "--bug" in command
    # Shrunk, and still failing when run as printed.
    again = runner.invoke(app, command)
    assert again.exit_code == 1, again.output


def test_bad_usage_exits_2_naming_what_to_fix() -> None:
    result = runner.invoke(app, ["sim", "--faults", "crash,meteor"])
    assert result.exit_code == 2
    assert "meteor" in result.output
    assert "crash" in result.output
    bug = runner.invoke(app, ["sim", "--bug", "nonesuch"])
    assert bug.exit_code == 2
    outbox = runner.invoke(app, ["sim", "--outbox", "transaction"])
    assert outbox.exit_code == 2
    assert "ack" in outbox.output
    assert "read-back" in outbox.output


def test_the_outbox_is_ack_unless_asked_and_a_read_back_replay_says_so() -> None:
    args = ["sim", "--seed", "3", "--tasks", "1", "--faults", "crash", "--json"]
    ack = json.loads(runner.invoke(app, args).stdout)
    assert ack["outbox"] == "ack"
    back = runner.invoke(app, [*args, "--outbox", "read-back"])
    assert back.exit_code == 0, back.output
    assert json.loads(back.stdout)["outbox"] == "read-back"
    assert json.loads(back.stdout)["hash"] != ack["hash"]
    failing = runner.invoke(
        app,
        [
            "sim",
            "--seed",
            "0",
            "--tasks",
            "2",
            "--outbox",
            "read-back",
            "--bug",
            "quorum_minus_one",
        ],
    )
    assert failing.exit_code == 1
    assert "--outbox read-back" in failing.stdout


def test_a_sweep_reports_its_rates_and_its_failing_seeds() -> None:
    args = ["sim", "--seed", "0", "--seeds", "3", "--tasks", "1", "--json"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["seeds"] == 3
    assert doc["failing"] == []
    assert doc["seeds_per_s"] > 0
    bad = runner.invoke(app, [*args, "--bug", "quorum_minus_one"])
    assert bad.exit_code == 1
    failing = json.loads(bad.stdout)["failing"]
    assert failing
    assert all("--bug quorum_minus_one" in f["replay"] for f in failing)
