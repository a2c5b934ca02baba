"""Fixtures for the LLM adapter tests: the fake provider servers of tests/fakeproviders.py.

These tests need no Kafka broker.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from tests.fakeproviders import FakeChatCompletionsAPI, FakeMessagesAPI


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeChatCompletionsAPI]:
    server = FakeChatCompletionsAPI()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeMessagesAPI]:
    server = FakeMessagesAPI()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
