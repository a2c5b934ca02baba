"""The docs' fastavro reader, run as written: it reads every message type from the
schema files alone, without synod's codec."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from synod.wire import Codec
from synod.wire.examples import example_envelopes

ROOT = Path(__file__).resolve().parents[3]


def _python_example() -> str:
    text = (ROOT / "docs" / "wire.md").read_text()
    section = text.split("### Python (fastavro)", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/wire.md has no Python example under '### Python (fastavro)'"
    return match.group(1)


@pytest.fixture(scope="module")
def decode() -> Any:
    namespace: dict[str, Any] = {}
    cwd = os.getcwd()
    os.chdir(ROOT)  # the example reads schemas/ relative to the checkout
    try:
        exec(compile(_python_example(), "docs/wire.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace["decode"]


def test_the_fastavro_example_reads_every_message_type(decode: Any) -> None:
    codec = Codec()
    envelopes = example_envelopes()
    assert len({e.type for e in envelopes}) >= 20
    for envelope in envelopes:
        read = decode(codec.encode_avro(envelope))
        assert read["message_id"] == envelope.message_id
        assert read["type"] == envelope.type
        assert read["task_id"] == envelope.task_id
        assert read["sender"]["role"] == envelope.sender.role


def test_the_fastavro_example_refuses_a_json_edge_record(decode: Any) -> None:
    envelope = example_envelopes()[0]
    with pytest.raises(ValueError, match="single-object"):
        decode(Codec.encode_json(envelope))
