"""The consensus service's integration tests: a real broker, the service as a process."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from synod.transport.admin import ensure_topics
from synod.transport.topics import CATALOGUE

# The shared harness sits next to the tests (tests are not a package here).
sys.path.insert(0, str(Path(__file__).parent))

PARTITIONS = 6


@pytest.fixture
async def prefix(bootstrap: str) -> str:
    """A fresh install on the shared broker: every catalogue topic under a new prefix."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, CATALOGUE, prefix=prefix, partitions=PARTITIONS)
    return prefix
