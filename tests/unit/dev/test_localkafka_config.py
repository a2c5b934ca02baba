"""The local broker's configuration and commands, without starting it."""

from __future__ import annotations

from pathlib import Path

from synod.dev import localkafka


def test_single_node_settings_that_transactions_and_fast_joins_need(tmp_path: Path) -> None:
    props = localkafka._server_properties(tmp_path, 9092, 9093)
    for line in (
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "offsets.topic.replication.factor=1",
        "group.initial.rebalance.delay.ms=0",
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
    ):
        assert line in props.splitlines()
