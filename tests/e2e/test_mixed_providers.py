"""A whole task through every service, the researcher on one provider, the coder on another.

Every service is a process on the real broker. The planner and the reviewers
run on the simulation; `SYNOD_MODEL_RESEARCHER` routes research to Claude (the
real anthropic SDK to the fake Messages API) and `SYNOD_MODEL_CODER` routes code
to an OpenAI-compatible server (the real openai SDK to the fake Chat
Completions API). One more task asks, by label, for its coder on Claude. Each
step's StepCompleted must name the provider and model that answered and where
the route came from.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.fakeproviders import FakeChatCompletionsAPI, FakeMessagesAPI
from tests.localteam import local_team, outcomes_by_task, read_topic, send_raw

from synod.transport.topics import RESULTS, TASK_EVENTS
from synod.wire import Codec, StepCompleted

CODEC = Codec()
NOTES = {"summary": "what is known", "findings": ["one finding"]}
CODE = {"files": [{"path": "app/main.py", "content": "def solve():\n    return 1\n"}]}


def answer(system: str) -> str:
    """A valid reply for the output model the system prompt asks for."""
    return json.dumps(CODE if '"files"' in system else NOTES)


@pytest.fixture
async def providers() -> AsyncIterator[tuple[FakeMessagesAPI, FakeChatCompletionsAPI]]:
    claude, compatible = FakeMessagesAPI(), FakeChatCompletionsAPI()
    claude.responder = lambda seen: claude.message_reply(
        answer(seen.body.get("system", "")), model=seen.body["model"]
    )
    compatible.responder = lambda seen: compatible.completion_reply(
        answer(seen.body["messages"][0]["content"]), model=seen.body["model"]
    )
    await claude.start()
    await compatible.start()
    try:
        yield claude, compatible
    finally:
        await claude.stop()
        await compatible.stop()


async def test_each_step_record_names_the_provider_and_model_that_served_it(
    kafka: Any, tmp_path: Path, providers: tuple[FakeMessagesAPI, FakeChatCompletionsAPI]
) -> None:
    claude, compatible = providers
    env = {
        "SYNOD_LLM_BACKEND": "sim",
        "SYNOD_LLM_SIM_LATENCY": "fixed:0.01",
        "ANTHROPIC_API_KEY": "sk-ant-e2e",
        "ANTHROPIC_BASE_URL": claude.url,
        "OPENAI_API_KEY": "sk-oai-e2e",
        "SYNOD_OPENAI_BASE_URL": f"{compatible.url}/v1",
        "SYNOD_MODEL_RESEARCHER": "anthropic:claude-haiku-4-5",
        "SYNOD_MODEL_CODER": "openai:gpt-4.1-mini",
    }
    replicas = {"consensus": 1, "planner": 1, "researcher": 1, "coder": 1, "reviewer": 3}
    plain, labelled = f"mix-{uuid.uuid4().hex[:6]}", f"lbl-{uuid.uuid4().hex[:6]}"
    async with local_team(kafka.bootstrap, tmp_path, "mix", replicas, env) as run:
        await send_raw(
            run,
            [
                (plain, json.dumps({"task_id": plain, "goal": "Write a parser"}).encode()),
                (
                    labelled,
                    json.dumps(
                        {
                            "task_id": labelled,
                            "goal": "Write a lexer",
                            "labels": {"model.coder": "anthropic:claude-opus-5-5"},
                        }
                    ).encode(),
                ),
            ],
        )
        results = await read_topic(
            run, RESULTS, lambda rs: set(outcomes_by_task(rs)) >= {plain, labelled}, 180
        )
        log = await read_topic(
            run, TASK_EVENTS, lambda rs: set(outcomes_by_task(rs)) >= {plain, labelled}, 60
        )
    outcomes = outcomes_by_task(results)
    assert [kind for _, kind in outcomes[plain]] == ["TaskCompleted"]
    assert [kind for _, kind in outcomes[labelled]] == ["TaskCompleted"]

    served: dict[str, set[tuple[str, str, str, str]]] = {plain: set(), labelled: set()}
    for record in log:
        envelope = CODEC.decode(record.value)
        if isinstance(envelope.body, StepCompleted) and envelope.task_id in served:
            route = envelope.body.route
            served[envelope.task_id].add(
                (envelope.sender.role, route.provider, route.model, route.source)
            )
    print(f"\nsteps served: {served}")
    assert ("researcher", "anthropic", "claude-haiku-4-5", "SYNOD_MODEL_RESEARCHER") in served[
        plain
    ]
    assert ("coder", "openai", "gpt-4.1-mini", "SYNOD_MODEL_CODER") in served[plain]
    assert ("coder", "anthropic", "claude-opus-5-5", "label model.coder") in served[labelled]
    # Every step went where its route said, nowhere else.
    for steps in served.values():
        for role, provider, _, _ in steps:
            assert (role, provider) in {
                ("researcher", "anthropic"),
                ("coder", "openai"),
                ("coder", "anthropic"),
            }
    models = {seen.body["model"] for seen in compatible.requests}
    assert models == {"gpt-4.1-mini"}
    assert {seen.body["model"] for seen in claude.requests} == {
        "claude-haiku-4-5",
        "claude-opus-5-5",
    }
