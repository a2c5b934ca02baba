"""The mapping from the openai SDK's exceptions to Synod's error classes, as a table."""

from __future__ import annotations

import json

import httpx2
import openai
import pytest

from synod.llm import LLMBudgetError, LLMPermanentError, LLMTimeoutError, LLMTransientError
from synod.llm.openai_errors import map_openai_error

REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
# Only for its status -> exception class table; it never sends a request.
CLIENT = openai.AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9")


def status_error(
    status: int, code: str | None = None, *, kind: str = "x", headers: dict[str, str] | None = None
) -> openai.APIStatusError:
    error = {"message": f"fake {status}", "type": kind, "code": code}
    response = httpx2.Response(
        status, request=REQUEST, headers=headers or {}, json={"error": error}
    )
    # What the SDK raises: the class it picks for the status (the body it passes is the error).
    return CLIENT._make_status_error(f"Error code: {status}", body=error, response=response)


@pytest.mark.parametrize(
    ("error", "expected", "reason"),
    [
        (status_error(429, "rate_limit_exceeded"), LLMTransientError, "rate_limited"),
        (status_error(429, "insufficient_quota"), LLMBudgetError, "spend_limit"),
        (status_error(402), LLMBudgetError, "spend_limit"),
        (status_error(500), LLMTransientError, "server_error"),
        (status_error(502), LLMTransientError, "server_error"),
        (status_error(503), LLMTransientError, "overloaded"),
        (status_error(408), LLMTransientError, "server_error"),
        (status_error(401, "invalid_api_key"), LLMPermanentError, "auth"),
        (status_error(403), LLMPermanentError, "auth"),
        (status_error(404, "model_not_found"), LLMPermanentError, "bad_request"),
        (status_error(400, "context_length_exceeded"), LLMPermanentError, "bad_request"),
        (openai.APITimeoutError(request=REQUEST), LLMTimeoutError, "timeout"),
        (openai.APIConnectionError(request=REQUEST), LLMTransientError, "connection"),
        (httpx2.ReadTimeout("slow", request=REQUEST), LLMTimeoutError, "timeout"),
        (httpx2.ConnectError("refused", request=REQUEST), LLMTransientError, "connection"),
        (json.JSONDecodeError("bad", "{", 0), LLMTransientError, "malformed_response"),
        (
            openai.APIError("boom", REQUEST, body={"message": "boom", "type": "server_error"}),
            LLMTransientError,
            "server_error",
        ),
        (
            openai.APIError("quota", REQUEST, body={"code": "insufficient_quota"}),
            LLMBudgetError,
            "spend_limit",
        ),
    ],
)
def test_mapping(error: Exception, expected: type[Exception], reason: str) -> None:
    mapped = map_openai_error(error, model="gpt-4.1-mini")
    assert type(mapped) is expected
    assert mapped.reason == reason
    assert mapped.model == "gpt-4.1-mini"


def test_retry_after_and_status_are_kept() -> None:
    mapped = map_openai_error(
        status_error(429, "rate_limit_exceeded", headers={"retry-after": "7"}), model="m"
    )
    assert isinstance(mapped, LLMTransientError)
    assert (mapped.retry_after_s, mapped.status) == (7.0, 429)
    assert "openai 429" in str(mapped)
