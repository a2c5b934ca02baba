"""`synod topics create` as a user runs it: JSON out, idempotent, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid


def _synod(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synod.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_topics_create_twice_prints_one_json_document(bootstrap: str) -> None:
    prefix = f"cli{uuid.uuid4().hex[:6]}."
    first = _synod(
        "topics", "create", "-b", bootstrap, "--prefix", prefix, "--partitions", "1", "--json"
    )
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert {t["action"] for t in doc["topics"]} == {"created"}
    assert f"{prefix}synod.tasks" in {t["topic"] for t in doc["topics"]}
    second = _synod("topics", "create", "-b", bootstrap, "--prefix", prefix, "--partitions", "1")
    assert second.returncode == 0
    assert "0 created" in second.stderr
    assert all(line.startswith("exists") for line in second.stdout.splitlines())


def test_unreachable_broker_fails_with_status_1_and_bad_usage_with_2() -> None:
    down = _synod("topics", "create", "-b", "127.0.0.1:1", "--json")
    assert down.returncode == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in json.loads(down.stdout)["error"]["message"]
    bad = _synod("topics", "create", "--partitions", "0")
    assert bad.returncode == 2
    assert "--partitions" in bad.stderr
