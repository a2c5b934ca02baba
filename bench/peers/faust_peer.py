"""The peers responder as a faust-streaming agent (run in its own venv).

`run.py` starts this under .cache/peers-faust-venv/bin/python as the
responder of the `faust` system: an agent reads the request topic and sends
each value to the reply topic with the same key, with faust's defaults
(offsets committed by faust's own commit interval). The requester is the
aiokafka one of run.py, on the same broker.

    .cache/peers-faust-venv/bin/python bench/peers/faust_peer.py BOOTSTRAP REQUESTS REPLIES GROUP
"""
# mypy: ignore-errors
# (faust-streaming is installed in its own venv only; the project's mypy cannot see it)

from __future__ import annotations

import sys
import tempfile

import faust


def main() -> int:
    bootstrap, requests, replies, group = sys.argv[1:5]
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        datadir=tempfile.mkdtemp(prefix="peers-faust-"),
        web_enabled=False,
        topic_disable_leader=True,
    )
    request_topic = app.topic(requests, value_type=bytes, key_type=bytes)
    reply_topic = app.topic(replies, value_type=bytes, key_type=bytes)

    @app.agent(request_topic)
    async def echo(stream):  # type: ignore[no-untyped-def]
        async for key, value in stream.items():
            await reply_topic.send(key=key, value=value)

    @app.task
    async def ready() -> None:
        # The worker redirects stdout into its logs; the parent reads the real one.
        sys.__stdout__.write("ready\n")
        sys.__stdout__.flush()

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
